/**
 * Retention applied to one log partition (ADR 0017): tally what was appended since the last run,
 * compute where the policies let the partition be cut, lower the cut to what lagging durable
 * subscriptions still need under a `wait` policy, tell the others and the ledger what a `drop` policy
 * takes from them, then trim the log (whole segments) and make the decision index forget it.
 */
import type { DeliveryEngine } from '../delivery/engine.ts';
import type { SubscriptionRuntime } from '../delivery/runtime.ts';
import { topicMatches } from '../domain/topics.ts';
import { recordTopics } from '../ingest/record.ts';
import type { LedgerService } from '../ledger/index.ts';
import type { EventLog, LogRecord } from '../log/index.ts';
import type { DecisionIndex } from '../state/index.ts';
import type { SubscriptionStore } from '../state/subscriptions-port.ts';
import type { RetentionMetrics } from './metrics.ts';
import type { PolicySet } from './policy.ts';
import { addFacts, chunkedTrimPoint, PartitionTally, type RecordFacts, type Tally } from './trim-point.ts';

/** Records read per log read while tallying or scanning. */
const READ_BATCH = 1024;

/** What applying retention needs. */
export interface ApplyDeps {
  readonly log: EventLog;
  readonly index: DecisionIndex;
  readonly engine: DeliveryEngine;
  /** Committed cursors (a subscription's durable ack floor). */
  readonly subscriptions: Pick<SubscriptionStore, 'loadCursors'>;
  readonly ledger: LedgerService;
  readonly metrics: RetentionMetrics;
}

/** What one run did to one partition. */
export interface PartitionRun {
  readonly partition: number;
  /** First offset before and after the run. */
  readonly firstBefore: number;
  readonly firstAfter: number;
  /** Where the policies alone would have cut (records before it may go). */
  readonly policyCut: number;
  /** Where the cut ended up after the waiting subscriptions (before segment granularity). */
  readonly cut: number;
  /** Subscriptions whose `wait` policy held retention back, with the offset they hold. */
  readonly waitingFor: readonly { subscription: string; offset: number }[];
  /** Subscriptions that lost records to a `drop` policy: [from, to). */
  readonly lost: readonly { subscription: string; from: number; to: number; pending: number }[];
  readonly removedRecords: number;
}

/** Applies retention to the partitions of one log; keeps the tallies between runs. */
export class RetentionApplier {
  /** Per partition, the tally and the policy generation it was made under. */
  readonly #tallies = new Map<number, { generation: number; tally: PartitionTally }>();
  /** Per partition, the first offset the index was last told (undefined: not yet this process). */
  readonly #indexFloor = new Map<number, number>();

  constructor(
    private readonly deps: ApplyDeps,
    private readonly chunkSize: number,
    /** True once the service is stopping: a run ends early, trimming nothing more. */
    private readonly stopped: () => boolean,
  ) {}

  /** One partition, under the policies `set`, at time `now`. */
  async apply(p: number, set: PolicySet, now: number): Promise<PartitionRun> {
    const { log } = this.deps;
    const ext0 = log.extents()[p] as { first: number; next: number };
    const firstBefore = ext0.first;
    await this.#forget(p, firstBefore);
    const tally = await this.#tally(p, set, firstBefore, ext0.next);
    const policyCut = await chunkedTrimPoint(tally, set.policies, now, firstBefore, (from, to) =>
      this.#facts(p, set, from, to),
    );
    const base = {
      partition: p,
      firstBefore,
      policyCut,
    };
    if (log.trimPoint(p, policyCut) <= firstBefore)
      return {
        ...base,
        firstAfter: firstBefore,
        cut: policyCut,
        waitingFor: [],
        lost: [],
        removedRecords: 0,
      };
    if (this.stopped())
      return {
        ...base,
        firstAfter: firstBefore,
        cut: policyCut,
        waitingFor: [],
        lost: [],
        removedRecords: 0,
      };
    // Subscriptions that have not acknowledged everything before the cut: the lower of the live ack
    // floor and the last committed one (acks not committed yet come again after a crash).
    const lagging: { rt: SubscriptionRuntime; floor: number }[] = [];
    for (const rt of [...this.deps.engine.runtimes()]) {
      const live = rt.floor(p);
      if (live === undefined) continue;
      const floor = Math.min(live, await this.#committedFloor(rt.spec.name, p, live));
      if (floor < policyCut) lagging.push({ rt, floor });
    }
    const { cut, waitingFor, needs } =
      lagging.length === 0
        ? { cut: policyCut, waitingFor: [], needs: new Map<SubscriptionRuntime, number>() }
        : await this.#scanLagging(p, set, policyCut, lagging);
    const point = log.trimPoint(p, cut);
    if (point <= firstBefore)
      return { ...base, firstAfter: firstBefore, cut, waitingFor, lost: [], removedRecords: 0 };
    // `drop`: every lagging subscription not holding the cut loses [floor, point). The ledger first,
    // so that a crash after the trim never leaves a loss unrecorded; then the cursors, then the log.
    const lost: { subscription: string; from: number; to: number; pending: number }[] = [];
    const losers = lagging.filter((l) => (needs.get(l.rt) ?? point) < point);
    for (const l of losers)
      await this.deps.ledger.recordRetentionLoss(l.rt.spec.name, p, l.floor, point, now);
    for (const l of losers) {
      const loss = l.rt.retentionLost(p, point, now);
      if (loss === undefined) continue;
      lost.push({ subscription: l.rt.spec.name, from: loss.from, to: loss.to, pending: loss.pending });
      this.deps.metrics.subscriptionsLost.inc({ subscription: l.rt.spec.name });
    }
    if (lost.length > 0) await this.deps.engine.commit();
    const removed = this.#removedStats(tally, point);
    const firstAfter = await log.trim(p, point);
    await this.#afterTrim(p, set, tally, firstAfter, removed);
    await this.#forget(p, firstAfter);
    return { ...base, firstAfter, cut, waitingFor, lost, removedRecords: firstAfter - firstBefore };
  }

  /** The ack floor of a subscription's last committed cursor on a partition (`dflt` when none). */
  async #committedFloor(name: string, p: number, dflt: number): Promise<number> {
    const c = (await this.deps.subscriptions.loadCursors(name)).find((x) => x.partition === p);
    if (c === undefined) return dflt;
    return c.pending.length > 0 ? Math.min(c.next, (c.pending[0] as readonly [number, number])[0]) : c.next;
  }

  /** Makes the index forget what the log no longer holds (also after a crash between the two). */
  async #forget(p: number, first: number): Promise<void> {
    if ((this.#indexFloor.get(p) ?? -1) >= first) return;
    await this.deps.index.trim(p, first);
    this.#indexFloor.set(p, first);
  }

  /** The partition's tally, rebuilt when the pattern set changed, extended to the log's tail. */
  async #tally(p: number, set: PolicySet, first: number, next: number): Promise<PartitionTally> {
    let entry = this.#tallies.get(p);
    if (entry === undefined || entry.generation !== set.generation) {
      entry = { generation: set.generation, tally: new PartitionTally(first, this.chunkSize) };
      this.#tallies.set(p, entry);
    }
    const t = entry.tally;
    // Chunks a trim by someone else removed (this service re-tallies after its own trims).
    while (t.chunks.length > 0 && (t.chunks[0] as { end: number }).end <= first) t.chunks.shift();
    if (t.scanned < first) t.scanned = first;
    while (t.scanned < next && !this.stopped()) {
      const recs = await this.deps.log.read(p, t.scanned, Math.min(READ_BATCH, next - t.scanned));
      if (recs.length === 0) break;
      for (const r of recs) t.add(factsOf(r, set));
    }
    return t;
  }

  async #facts(p: number, set: PolicySet, from: number, to: number): Promise<RecordFacts[]> {
    const out: RecordFacts[] = [];
    let at = from;
    while (at < to) {
      const recs = await this.deps.log.read(p, at, Math.min(READ_BATCH, to - at));
      if (recs.length === 0) break;
      for (const r of recs) if (r.offset < to) out.push(factsOf(r, set));
      at = (recs[recs.length - 1] as LogRecord).offset + 1;
    }
    return out;
  }

  /**
   * Reads [lowest floor, cut) once for the lagging subscriptions: a record a subscription needs (one of
   * its topics matches the subscription's patterns) holds the cut back when the policy governing that
   * topic says `wait`; the first needed record of each is noted (a `drop` policy's loss is real only
   * when there is one). Stops as soon as every lagging subscription is held.
   */
  async #scanLagging(
    p: number,
    set: PolicySet,
    policyCut: number,
    lagging: readonly { rt: SubscriptionRuntime; floor: number }[],
  ): Promise<{
    cut: number;
    waitingFor: { subscription: string; offset: number }[];
    needs: Map<SubscriptionRuntime, number>;
  }> {
    let cut = policyCut;
    const waitingFor: { subscription: string; offset: number }[] = [];
    const needs = new Map<SubscriptionRuntime, number>();
    const held = new Set<SubscriptionRuntime>();
    let at = Math.min(...lagging.map((l) => l.floor));
    while (at < cut && held.size < lagging.length) {
      const recs = await this.deps.log.read(p, at, Math.min(READ_BATCH, cut - at));
      if (recs.length === 0) break;
      for (const r of recs) {
        if (r.offset >= cut) break;
        const topics = recordTopics(r);
        for (const l of lagging) {
          if (held.has(l.rt) || r.offset < l.floor) continue;
          let needed = false;
          let waits = false;
          for (const t of topics) {
            if (!l.rt.spec.topics.some((pat) => topicMatches(pat, t))) continue;
            needed = true;
            if (set.policies[set.governing(t)]?.onUnacknowledged === 'wait') waits = true;
          }
          if (needed && !needs.has(l.rt)) needs.set(l.rt, r.offset);
          if (!waits) continue;
          held.add(l.rt);
          waitingFor.push({ subscription: l.rt.spec.name, offset: r.offset });
          cut = Math.min(cut, r.offset);
        }
      }
      at = (recs[recs.length - 1] as LogRecord).offset + 1;
    }
    return { cut, waitingFor, needs };
  }

  /** Per policy, the tallies of the records before `point` (what a trim to it removes). */
  #removedStats(tally: PartitionTally, point: number): Map<number, Tally> {
    const out = new Map<number, Tally>();
    for (const c of tally.chunks) {
      if (c.start >= point) break;
      if (c.end > point) break; // the straddling chunk is re-tallied after the trim
      for (const [k, t] of c.stats) {
        const s = out.get(k);
        if (s === undefined) out.set(k, { ...t });
        else {
          s.count += t.count;
          s.bytes += t.bytes;
        }
      }
    }
    return out;
  }

  /** Drops the chunks the trim removed, re-tallies the one it cut through, and counts the metrics. */
  async #afterTrim(
    p: number,
    set: PolicySet,
    tally: PartitionTally,
    first: number,
    removed: Map<number, Tally>,
  ): Promise<void> {
    while (tally.chunks.length > 0 && (tally.chunks[0] as { end: number }).end <= first) tally.chunks.shift();
    const c = tally.chunks[0];
    if (c !== undefined && c.start < first) {
      const kept = new Map<number, Tally>();
      for (const f of await this.#facts(p, set, first, c.end)) addFacts(kept, f);
      for (const [k, t] of c.stats) {
        const left = kept.get(k);
        const s = removed.get(k) ?? { count: 0, bytes: 0, newest: 0 };
        s.count += t.count - (left?.count ?? 0);
        s.bytes += t.bytes - (left?.bytes ?? 0);
        removed.set(k, s);
      }
      c.stats.clear();
      for (const [k, t] of kept) c.stats.set(k, t);
      c.start = first;
    }
    for (const [k, t] of removed) {
      const policy = set.policies[k]?.name ?? 'default';
      const labels = { partition: String(p), policy };
      this.deps.metrics.removedRecords.inc(labels, t.count);
      this.deps.metrics.removedBytes.inc(labels, t.bytes);
    }
  }
}

/** The facts retention needs of a log record. */
function factsOf(r: LogRecord, set: PolicySet): RecordFacts {
  return {
    offset: r.offset,
    timestamp: r.timestamp,
    bytes: r.payload.byteLength,
    policies: set.of(recordTopics(r)),
  };
}
