/**
 * The audit trail as the rest of the service uses it: appends (batched, in order), denied accesses
 * (never slowing the request that was denied), and verification of the whole chain.
 */
import type { AuditEvent, AuditRecord } from '../domain/audit.ts';
import { findChainBreak } from '../domain/audit.ts';
import type { AuditStore } from '../state/index.ts';

/** Outcome of verifying the chain. */
export interface AuditVerification {
  readonly ok: boolean;
  readonly records: number;
  readonly lastHash?: string;
  readonly brokenAt?: { seq: number; reason: string };
}

/** Appends to and verifies the audit trail. */
export class AuditTrail {
  private queue: {
    events: AuditEvent[];
    resolve: (r: AuditRecord[]) => void;
    reject: (e: unknown) => void;
  }[] = [];
  private flushing: Promise<void> | undefined;
  private readonly rateDenials = new Map<string, { count: number; first: string; target: string }>();
  private rateTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: AuditStore,
    private readonly onError: (e: unknown) => void,
  ) {}

  /** Appends events, resolving with their records once durable. Concurrent calls are written together. */
  append(...events: AuditEvent[]): Promise<AuditRecord[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        const records = await this.store.append(batch.flatMap((b) => b.events));
        let i = 0;
        for (const b of batch) {
          b.resolve(records.slice(i, i + b.events.length));
          i += b.events.length;
        }
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
    }
    this.flushing = undefined;
  }

  /** Records a denied access without making the caller wait; failures go to onError. */
  denied(
    actor: string,
    target: string,
    code: string,
    reason: string,
    extra: Record<string, unknown> = {},
  ): void {
    this.append({ actor, action: 'access.denied', target, details: { code, reason, ...extra } }).catch(
      this.onError,
    );
  }

  /**
   * Records rate-limit denials: one record per principal and second, with the count, so a flood of
   * refused requests is fully accounted for without one write per request.
   */
  rateLimited(actor: string, target: string): void {
    const cur = this.rateDenials.get(actor);
    if (cur) cur.count++;
    else this.rateDenials.set(actor, { count: 1, first: new Date().toISOString(), target });
    this.rateTimer ??= setTimeout(() => this.flushRateDenials(), 1000);
  }

  private flushRateDenials(): void {
    this.rateTimer = undefined;
    const events: AuditEvent[] = [...this.rateDenials].map(([actor, d]) => ({
      actor,
      action: 'access.denied',
      target: d.target,
      details: { code: 'RATE_LIMITED', reason: 'rate limit exceeded', count: d.count, since: d.first },
    }));
    this.rateDenials.clear();
    if (events.length > 0) this.append(...events).catch(this.onError);
  }

  /** Writes pending rate-limit denials and waits for every queued append. */
  async drain(): Promise<void> {
    if (this.rateTimer) clearTimeout(this.rateTimer);
    this.flushRateDenials();
    while (this.flushing) await this.flushing;
  }

  /** Reads the whole trail in order and checks every link. */
  async verify(): Promise<AuditVerification> {
    const state: { prev?: { seq: number; hash: string } } = {};
    let after = 0;
    let records = 0;
    for (;;) {
      const page = await this.store.list(after, 1000);
      if (page.length === 0) break;
      const broken = findChainBreak(page, state);
      if (broken) return { ok: false, records, brokenAt: broken };
      records += page.length;
      after = (page[page.length - 1] as AuditRecord).seq;
    }
    const last = await this.store.last();
    if (last !== undefined && last.seq !== after) {
      return {
        ok: false,
        records,
        brokenAt: { seq: last.seq, reason: `the trail ends at ${last.seq} but reading stopped at ${after}` },
      };
    }
    return { ok: true, records, ...(state.prev ? { lastHash: state.prev.hash } : {}) };
  }
}
