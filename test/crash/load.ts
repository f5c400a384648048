/**
 * Shared by the crash tests: closed-loop publishers that keep many publishes in flight over many
 * connections, a record of what each request got, and the checks made after a restart.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Decision } from '../../src/domain/decision.ts';
import type { DecisionGenerator } from '../helpers/decisions.ts';
import {
  getDecision,
  publish,
  queryAll,
  type ErrorBody,
  type PublishAck,
  type StoredDecision,
} from '../helpers/server.ts';

/** What one publish request got. */
export type Outcome =
  | { readonly kind: 'acked'; readonly acks: readonly PublishAck[] }
  | {
      readonly kind: 'http';
      readonly status: number;
      readonly body: unknown;
      readonly retryAfter: string | null;
    }
  | { readonly kind: 'network'; readonly error: string };

/** One publish request and its outcome. */
export interface PublishRecord {
  readonly decisions: readonly Decision[];
  readonly batch: boolean;
  readonly outcome: Outcome;
  /** Milliseconds since the publishers started, when the request was sent and when it ended. */
  readonly sentAt: number;
  readonly endedAt: number;
}

/** Options of {@link runPublishers}. */
export interface PublishersOptions {
  readonly url: string;
  readonly key: string;
  readonly gen: DecisionGenerator;
  /** Requests kept in flight (one per worker). */
  readonly concurrency: number;
  /** Share of requests that are batches (2..maxBatch decisions). */
  readonly batchShare: number;
  readonly maxBatch: number;
}

/** Running publishers: `stop()` stops new requests and resolves with every record once all ended. */
export interface Publishers {
  /** Requests currently in flight. */
  inFlight(): number;
  /** Highest number of requests seen in flight at once. */
  peakInFlight(): number;
  /** Milliseconds since the publishers started (the clock of `sentAt` and `endedAt`). */
  elapsed(): number;
  /** Stops starting new requests; resolves with every record once the requests in flight ended. */
  stop(): Promise<PublishRecord[]>;
  /** The records so far. */
  readonly records: PublishRecord[];
}

function describeError(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  return [e.message, e.cause?.code, e.cause?.message].filter(Boolean).join(': ');
}

function outcomeOf(res: Awaited<ReturnType<typeof publish>>, batch: boolean, count: number): Outcome {
  if (res.status === 200) {
    const body = res.body as PublishAck | { results?: PublishAck[] };
    const acks = batch ? ((body as { results?: PublishAck[] }).results ?? []) : [body as PublishAck];
    if (acks.length === count) return { kind: 'acked', acks };
  }
  return { kind: 'http', status: res.status, body: res.body, retryAfter: res.headers.get('retry-after') };
}

/** Starts `concurrency` workers, each publishing a single decision or a small batch in a loop. */
export function startPublishers(opts: PublishersOptions): Publishers {
  const records: PublishRecord[] = [];
  const t0 = performance.now();
  let stopped = false;
  let inFlight = 0;
  let peak = 0;
  const worker = async () => {
    while (!stopped) {
      const batch = opts.gen.rand() < opts.batchShare;
      const n = batch ? 2 + Math.floor(opts.gen.rand() * (opts.maxBatch - 1)) : 1;
      const decisions = opts.gen.take(n);
      const sentAt = performance.now() - t0;
      inFlight++;
      if (inFlight > peak) peak = inFlight;
      let outcome: Outcome;
      try {
        const res = await publish(opts.url, opts.key, batch ? decisions : decisions[0]!);
        outcome = outcomeOf(res, batch, n);
      } catch (err) {
        outcome = { kind: 'network', error: describeError(err) };
      }
      inFlight--;
      records.push({ decisions, batch, outcome, sentAt, endedAt: performance.now() - t0 });
      // After a network error the server is gone or going: wait a little instead of spinning.
      if (outcome.kind === 'network') await new Promise((r) => setTimeout(r, 5));
    }
  };
  const workers = Array.from({ length: opts.concurrency }, worker);
  return {
    records,
    inFlight: () => inFlight,
    peakInFlight: () => peak,
    elapsed: () => performance.now() - t0,
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
      return records;
    },
  };
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/** Everything the tests know about what the server must hold, across iterations and restarts. */
export class Ledger {
  /** decisionId -> the decision as sent. */
  readonly sent = new Map<string, Decision>();
  /** decisionId -> position acknowledged. */
  readonly acked = new Map<string, string>();
  /** Unacknowledged decisions found stored after a restart (complete, so the server has them). */
  readonly presentUnacked = new Set<string>();
  /** Problems found; empty when all is well. */
  readonly problems: string[] = [];

  /** Records the requests of one iteration. */
  add(records: readonly PublishRecord[]): void {
    for (const r of records) {
      for (const d of r.decisions) this.sent.set(d.decisionId, d);
      if (r.outcome.kind !== 'acked') continue;
      r.outcome.acks.forEach((a, i) => {
        const d = r.decisions[i]!;
        if (a.decisionId !== d.decisionId)
          this.problems.push(`ack ${i} is for ${a.decisionId}, sent ${d.decisionId}`);
        if (a.duplicate) this.problems.push(`first publish of ${d.decisionId} acknowledged as duplicate`);
        this.acked.set(d.decisionId, a.position);
      });
    }
  }

  /** How many distinct decisions the server must hold. */
  expectedCount(): number {
    return this.acked.size + this.presentUnacked.size;
  }
}

/**
 * After a restart: every acknowledged decision of `records` is there by GET with its body and its
 * position; every other request is all-or-nothing (a batch is atomic) and, if it was refused with
 * a definite 4xx/503 answer, absent.
 */
export async function checkByGet(
  url: string,
  key: string,
  records: readonly PublishRecord[],
  ledger: Ledger,
): Promise<{ acked: number; unackedPresent: number; unackedAbsent: number }> {
  let acked = 0;
  let unackedPresent = 0;
  let unackedAbsent = 0;
  await mapLimit(records, 32, async (r) => {
    const got = await Promise.all(r.decisions.map((d) => getDecision(url, key, d.decisionId)));
    const present = got.map((g, i) => {
      const d = r.decisions[i]!;
      if (g.status === 404) return false;
      if (g.status !== 200) {
        ledger.problems.push(`GET ${d.decisionId} answered ${g.status} ${JSON.stringify(g.body)}`);
        return false;
      }
      const s = g.body as StoredDecision;
      if (!isDeepStrictEqual(s.decision, d)) ledger.problems.push(`${d.decisionId} stored differs from sent`);
      return true;
    });
    if (r.outcome.kind === 'acked') {
      r.decisions.forEach((d, i) => {
        if (!present[i]) ledger.problems.push(`acknowledged ${d.decisionId} missing after restart`);
        const s = got[i]!.body as StoredDecision;
        const pos = ledger.acked.get(d.decisionId);
        if (present[i] && s.position !== pos) {
          ledger.problems.push(`${d.decisionId} at position ${s.position}, acknowledged at ${pos}`);
        }
      });
      acked += r.decisions.length;
      return;
    }
    const n = present.filter(Boolean).length;
    if (n !== 0 && n !== r.decisions.length) {
      ledger.problems.push(
        `batch of ${r.decisions.length} partly stored (${n}): ${r.decisions[0]!.decisionId}..`,
      );
    }
    const definite = r.outcome.kind === 'http' && (r.outcome.status < 500 || r.outcome.status === 503);
    if (definite && n > 0) {
      ledger.problems.push(
        `refused publish (${(r.outcome as { status: number }).status}) stored ${r.decisions[0]!.decisionId}`,
      );
    }
    for (let i = 0; i < r.decisions.length; i++) {
      if (present[i]) ledger.presentUnacked.add(r.decisions[i]!.decisionId);
    }
    if (n > 0) unackedPresent += r.decisions.length;
    else unackedAbsent += r.decisions.length;
  });
  return { acked, unackedPresent, unackedAbsent };
}

/**
 * Pages through GET /v1/decisions: no decision twice, exactly the expected number, every
 * acknowledged one among them, nothing the tests never sent.
 */
export async function checkByQuery(url: string, key: string, ledger: Ledger): Promise<number> {
  const items = await queryAll(url, key);
  const seen = new Set<string>();
  for (const it of items) {
    if (seen.has(it.decisionId)) ledger.problems.push(`query returned ${it.decisionId} twice`);
    seen.add(it.decisionId);
    if (!ledger.sent.has(it.decisionId)) ledger.problems.push(`query returned ${it.decisionId}, never sent`);
  }
  for (const id of ledger.acked.keys())
    if (!seen.has(id)) ledger.problems.push(`query lacks acknowledged ${id}`);
  if (seen.size !== ledger.expectedCount()) {
    ledger.problems.push(`query has ${seen.size} distinct decisions, expected ${ledger.expectedCount()}`);
  }
  return items.length;
}

/** Is this error body the retriable SHUTTING_DOWN refusal? */
export function isShuttingDown(body: unknown): boolean {
  const e = (body as Partial<ErrorBody> | undefined)?.error;
  return e?.code === 'SHUTTING_DOWN' && e.retriable === true;
}

/** Median of numbers (0 for none). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
