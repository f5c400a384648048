/**
 * The delivery ledger (DESIGN 5; ADR 0011): for one revision of a decision, per matching subscription,
 * its state and the times of delivery and acknowledgement, derived from the live window, the cursors'
 * commit records, dead letters and exception records, never from a row per delivery.
 */
import type { DeliveryIntrospect, LiveEntryState } from '../delivery/introspect.ts';
import type { StoredDecision } from '../ingest/record.ts';
import { SubscriptionMatcher } from '../routing/matcher.ts';
import type { ExplainVerdict } from '../routing/matcher.ts';
import type { SubscriptionStore } from '../state/subscriptions-port.ts';
import type { SubscriptionSpec } from '../subscriptions/spec.ts';
import type { CommitRecord, LedgerStore } from './port.ts';
import { inRanges } from './recorder.ts';

/** Commit records examined per subscription and query. */
const MAX_SCAN = 2000;

/** The state of one decision in one subscription. */
export type LedgerState =
  | 'pending'
  | 'delivered'
  | 'acked'
  | 'nacked'
  | 'dead-lettered'
  | 'expired'
  | 'superseded'
  | 'held'
  | 'skipped'
  | 'retention-lost'
  | 'filtered';

/** One matching subscription's line of the ledger. */
export interface LedgerLine {
  readonly subscription: string;
  readonly state: LedgerState;
  /** Whether the subscription has read the decision's position yet. */
  readonly read: boolean;
  readonly deliveryCount: number | null;
  /** ISO 8601, at the granularity of cursor commits (no later than this), or null when not known. */
  readonly deliveredAt: string | null;
  readonly ackedAt: string | null;
  /** From receivedAt to deliveredAt / ackedAt, in ms. */
  readonly deliveryLatencyMs: number | null;
  readonly ackLatencyMs: number | null;
  /** For dead letters and exceptions: why. */
  readonly reason?: string;
}

/** A subscription that did not take the decision, and why (explain=true). */
export interface FilteredLine {
  readonly subscription: string;
  readonly state: 'filtered';
  readonly reason: string;
  readonly field?: string;
  readonly error?: string;
}

/** The answer of GET /v1/decisions/{id}/deliveries. */
export interface LedgerAnswer {
  readonly decisionId: string;
  readonly revision: number;
  readonly position: string;
  readonly topics: readonly string[];
  readonly receivedAt: string;
  readonly granularity: { readonly times: 'cursor-commit'; readonly commitIntervalMs: number };
  readonly deliveries: LedgerLine[];
  readonly filtered?: FilteredLine[];
}

const EXCEPTION_STATE: Record<string, LedgerState> = {
  filtered: 'filtered',
  expired: 'expired',
  superseded: 'superseded',
  deadLettered: 'dead-lettered',
  skipped: 'skipped',
  retentionLost: 'retention-lost',
};

/**
 * Answers ledger queries. With `clusterWide` (cluster mode, ADR 0015) the subscriptions that other
 * instances dispatch are answered too, from the shared store: their definitions (matched here), their
 * cursors as of their owner's last commit, their dead letters and the ledger's commit records.
 */
export class LedgerService {
  /** The definitions of subscriptions not running here, by name and stored version. */
  readonly #remote = new SubscriptionMatcher();
  readonly #remoteSpecs = new Map<string, { version: number; spec: SubscriptionSpec }>();

  constructor(
    private readonly store: LedgerStore,
    private readonly introspect: DeliveryIntrospect,
    private readonly subscriptions: SubscriptionStore,
    private readonly commitIntervalMs: number,
    private readonly flushed: () => Promise<void>,
    private readonly clusterWide = false,
  ) {}

  /** Which subscriptions not running here take or filter out a decision (their stored definitions). */
  async #remoteVerdicts(decision: unknown, topics: readonly string[]): Promise<ExplainVerdict[]> {
    if (!this.clusterWide) return [];
    const records = (await this.subscriptions.list()).filter(
      (r) => this.introspect.spec(r.name) === undefined,
    );
    const names = new Set(records.map((r) => r.name));
    for (const name of [...this.#remoteSpecs.keys()])
      if (!names.has(name)) {
        this.#remote.remove(name);
        this.#remoteSpecs.delete(name);
      }
    for (const r of records) {
      if (this.#remoteSpecs.get(r.name)?.version === r.version) continue;
      const spec = r.spec as unknown as SubscriptionSpec;
      const entry = { id: r.name, patterns: spec.topics, filter: spec.filter };
      if (this.#remoteSpecs.has(r.name)) this.#remote.update(entry);
      else this.#remote.add(entry);
      this.#remoteSpecs.set(r.name, { version: r.version, spec });
    }
    return this.#remote.explain(decision, topics).filter((v) => names.has(v.id));
  }

  /** Where an offset stands in a subscription another instance runs: its last committed cursor. */
  async #storedLive(name: string, p: number, o: number): Promise<LiveEntryState> {
    const cursor = (await this.subscriptions.loadCursors(name)).find((c) => c.partition === p);
    if (cursor === undefined || o >= cursor.next) return { kind: 'unread' };
    const pending = cursor.pending.find(([offset]) => offset === o);
    if (pending === undefined) return { kind: 'resolved' };
    // The stored cursor keeps delivery counts, not whether a delivery is out now.
    return { kind: 'pending', status: pending[1] > 0 ? 'out' : 'waiting', deliveryCount: pending[1] };
  }

  /** The ledger of one stored revision. */
  async deliveries(s: StoredDecision, explain: boolean): Promise<LedgerAnswer> {
    await this.introspect.flush();
    await this.flushed();
    const [p, o] = s.position.split(':').map(Number) as [number, number];
    const received = Date.parse(s.receivedAt);
    const deliveries: LedgerLine[] = [];
    const filtered: FilteredLine[] = [];
    const remote = await this.#remoteVerdicts(s.decision, s.topics);
    for (const v of [...this.introspect.explain(s.decision, s.topics), ...remote]) {
      if (!v.taken) {
        filtered.push({
          subscription: v.id,
          state: 'filtered',
          reason: v.reason,
          ...('field' in v ? { field: v.field } : {}),
          ...('error' in v ? { error: v.error } : {}),
        });
        continue;
      }
      const spec = this.introspect.spec(v.id) ?? this.#remoteSpecs.get(v.id)?.spec;
      const startedAfter = await this.#startedAfter(v.id, spec, p, o, received);
      if (startedAfter) {
        filtered.push({ subscription: v.id, state: 'filtered', reason: 'subscription_started_after' });
        continue;
      }
      const live = this.#remoteSpecs.has(v.id)
        ? await this.#storedLive(v.id, p, o)
        : this.introspect.live(v.id, p, o);
      const line = await this.#line(v.id, spec, live, p, o, s, received);
      if (line !== undefined) deliveries.push(line);
    }
    deliveries.sort((a, b) => a.subscription.localeCompare(b.subscription));
    filtered.sort((a, b) => a.subscription.localeCompare(b.subscription));
    return {
      decisionId: s.decisionId,
      revision: s.revision,
      position: s.position,
      topics: s.topics,
      receivedAt: s.receivedAt,
      granularity: { times: 'cursor-commit', commitIntervalMs: this.commitIntervalMs },
      deliveries,
      ...(explain ? { filtered } : {}),
    };
  }

  /** Records that a `drop` retention policy removed [from, to) of a partition for a subscription (ADR 0017). */
  recordRetentionLoss(subscription: string, partition: number, from: number, to: number, at: number) {
    return this.store.append([
      { subscription, partition, record: { t: at, lo: from, hi: to, r: [], d: [], x: [], l: [from, to] } },
    ]);
  }

  /** Whether the ledger holds a retention loss of this offset for the subscription. */
  async retentionLost(subscription: string, partition: number, offset: number): Promise<boolean> {
    const records = await this.store.find(subscription, partition, offset, MAX_SCAN);
    return records.some((r) => r.l !== undefined && inRanges(r.l, offset));
  }

  /** A subscription created after the decision, starting at the tail (or later), never takes it. */
  async #startedAfter(
    name: string,
    spec: Pick<SubscriptionSpec, 'start'> | undefined,
    p: number,
    o: number,
    received: number,
  ): Promise<boolean> {
    if (spec === undefined) return false;
    const start = spec.start;
    if (start.kind === 'latest') {
      const rec = await this.subscriptions.get(name);
      return rec !== undefined && Date.parse(rec.createdAt) > received;
    }
    if (start.kind === 'time') return Date.parse(start.time) > received;
    if (start.kind === 'positions')
      return start.positions.some((x) => {
        const [sp, so] = x.split(':').map(Number);
        return sp === p && (so ?? 0) > o;
      });
    return false;
  }

  async #line(
    name: string,
    spec: Pick<SubscriptionSpec, 'includeExpired'> | undefined,
    live: LiveEntryState | undefined,
    p: number,
    o: number,
    s: StoredDecision,
    received: number,
  ): Promise<LedgerLine | undefined> {
    if (live === undefined) return undefined;
    const records = await this.store.find(name, p, o, MAX_SCAN);
    const t = times(records, o);
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    const lat = (ms: number | undefined) => (ms === undefined ? null : Math.max(0, ms - received));
    const base = { subscription: name, deliveredAt: iso(t.delivered), deliveryLatencyMs: lat(t.delivered) };
    if (live.kind === 'unread')
      return { ...base, state: 'pending', read: false, deliveryCount: 0, ackedAt: null, ackLatencyMs: null };
    if (live.kind === 'pending') {
      const state: LedgerState =
        live.status === 'out'
          ? 'delivered'
          : live.status === 'held'
            ? 'held'
            : live.deliveryCount > 0
              ? 'nacked'
              : 'pending';
      return {
        ...base,
        state,
        read: true,
        deliveryCount: live.deliveryCount,
        ackedAt: null,
        ackLatencyMs: null,
      };
    }
    const [letter] = await this.subscriptions.listDeadLetters(name, {
      after: { partition: p, offset: o - 1 },
      limit: 1,
    });
    if (letter !== undefined && letter.partition === p && letter.offset === o)
      return {
        ...base,
        state: 'dead-lettered',
        read: true,
        deliveryCount: letter.deliveryCount,
        ackedAt: null,
        ackLatencyMs: null,
        reason: letter.reason,
      };
    if (t.exception !== undefined)
      return {
        ...base,
        state: EXCEPTION_STATE[t.exception] ?? 'filtered',
        read: true,
        deliveryCount: null,
        ackedAt: null,
        ackLatencyMs: null,
        reason: t.exception === 'filtered' ? 'filter_changed' : t.exception,
      };
    const exp = s.decision.expiresAt === undefined ? Number.NaN : Date.parse(s.decision.expiresAt);
    // Expired when read: resolved without ever being seen delivered, after its expiry.
    if (
      !Number.isNaN(exp) &&
      spec?.includeExpired !== true &&
      t.delivered === undefined &&
      exp <= (t.resolved ?? Date.now())
    )
      return { ...base, state: 'expired', read: true, deliveryCount: 0, ackedAt: null, ackLatencyMs: null };
    const delivered = t.delivered ?? t.resolved;
    return {
      subscription: name,
      state: 'acked',
      read: true,
      deliveryCount: null,
      deliveredAt: iso(delivered),
      deliveryLatencyMs: lat(delivered),
      ackedAt: iso(t.resolved),
      ackLatencyMs: lat(t.resolved),
    };
  }
}

/** When the commit records saw an offset first delivered and last resolved, and how. */
function times(
  records: readonly CommitRecord[],
  o: number,
): { delivered?: number; resolved?: number; exception?: string } {
  let delivered: number | undefined;
  let resolved: number | undefined;
  let exception: string | undefined;
  let exceptionAt = -1;
  for (const r of records) {
    // Retention removed it before an ack: that is final, whatever the later cursor commits say.
    if (r.l !== undefined && inRanges(r.l, o)) return { exception: 'retentionLost' };
    if (inRanges(r.d, o) && (delivered === undefined || r.t < delivered)) delivered = r.t;
    if (inRanges(r.r, o) && (resolved === undefined || r.t > resolved)) resolved = r.t;
    for (const [xo, outcome] of r.x)
      if (xo === o && r.t > exceptionAt) {
        exception = outcome;
        exceptionAt = r.t;
      }
  }
  if (resolved !== undefined && delivered !== undefined && delivered > resolved) delivered = resolved;
  // An exception older than the last resolution was undone (replayed, sought back): not current.
  if (exception !== undefined && resolved !== undefined && exceptionAt < resolved) exception = undefined;
  return {
    ...(delivered === undefined ? {} : { delivered }),
    ...(resolved === undefined ? {} : { resolved }),
    ...(exception === undefined ? {} : { exception }),
  };
}
