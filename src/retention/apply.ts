/**
 * Retention applied to one log partition (ADR 0017): tally what was appended since the last run,
 * compute where the policies let the partition be cut, lower the cut to what lagging durable
 * subscriptions still need under a `wait` policy, tell the others and the ledger what a `drop` policy
 * takes from them, then trim the log (whole segments) and make the decision index forget it.
 *
 * In cluster mode (ADR 0015) the log is shared and each subscription is dispatched by one instance:
 * the subscriptions running elsewhere are read from the shared store (their committed cursors) and
 * always hold the trim, whatever the policy; only their owner, which alone can move their cursors,
 * declares their losses.
 */
import type { DeliveryEngine } from '../delivery/engine.ts';
import type { SubscriptionRuntime } from '../delivery/runtime.ts';
import { topicMatches } from '../domain/topics.ts';
import { recordTopics } from '../ingest/record.ts';
import type { LedgerService } from '../ledger/index.ts';
import type { EventLog, LogRecord } from '../log/index.ts';
import type { DecisionIndex } from '../state/index.ts';
import type { CursorSnapshot, SubscriptionStore } from '../state/subscriptions-port.ts';
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
  /** Subscriptions and their committed cursors (a subscription's durable ack floor). */
  readonly subscriptions: Pick<SubscriptionStore, 'list' | 'loadCursors'>;
  readonly ledger: LedgerService;
  readonly metrics: RetentionMetrics;
  /**
   * Cluster mode (ADR 0015): the log is shared with instances that dispatch other subscriptions, so
   * every subscription of the store is consulted, not only this engine's. False or absent: every
   * subscription runs here (embedded).
   */
  readonly cluster?: boolean;
}

/**
 * A subscription that has not acknowledged everything before the policies' cut. `rt` is set when it
 * runs here; otherwise it runs on another instance (cluster mode) and is known by its committed cursor.
 */
interface Lagger {
  readonly name: string;
  readonly topics: readonly string[];
  /** Its ack floor on the partition. */
  readonly floor: number;
  readonly rt?: SubscriptionRuntime;
  /**
   * Another instance's subscription that holds the first record from its floor on whatever its topics
   * (a committed pending entry: its owner will read it again), or at once when `waits` is also set.
   */
  readonly atFloor?: boolean;
  /** With `atFloor`: held at its floor as if a `wait` policy governed it (nothing known of it). */
  readonly waits?: boolean;
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
  /**
   * Subscriptions that held retention back, with the offset they hold: under a `wait` policy, and in
   * cluster mode every one dispatched by another instance whatever the policy (only its owner drops).
   */
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
    const lagging: Lagger[] = [];
    const here = [...this.deps.engine.runtimes()];
    for (const rt of here) {
      const live = rt.floor(p);
      if (live === undefined) continue;
      const floor = Math.min(live, await this.#committedFloor(rt.spec.name, p, live));
      if (floor < policyCut) lagging.push({ name: rt.spec.name, topics: rt.spec.topics, floor, rt });
    }
    if (this.deps.cluster === true) {
      const names = new Set(here.map((rt) => rt.spec.name));
      lagging.push(...(await this.#laggingElsewhere(p, firstBefore, policyCut, names)));
    }
    const scan =
      lagging.length === 0
        ? { localCut: policyCut, cut: policyCut, waitingFor: [], needs: new Map<Lagger, number>() }
        : await this.#scanLagging(p, set, policyCut, lagging);
    const { needs } = scan;
    const waitingFor = [...scan.waitingFor];
    let cut = scan.cut;
    // `drop` applies to this instance's subscriptions up to `localPoint`, the trim point of the cut held
    // only by `wait` policies. Another instance's subscription lagging under `drop` holds the trim below
    // it (`cut`), not the losses here: each owner drops its own, and once every owner has, a later run
    // anywhere trims (embedded: there is no other instance, the two are the same).
    const localPoint = log.trimPoint(p, scan.localCut);
    const lost: { subscription: string; from: number; to: number; pending: number }[] = [];
    if (localPoint > firstBefore) {
      // Every lagging subscription running here and not holding the cut loses [floor, localPoint). The
      // ledger first, so that a crash after the trim never leaves a loss unrecorded; then the cursors,
      // then the log.
      const losers = lagging.filter((l) => l.rt !== undefined && (needs.get(l) ?? localPoint) < localPoint);
      for (const l of losers) await this.deps.ledger.recordRetentionLoss(l.name, p, l.floor, localPoint, now);
      for (const l of losers) {
        const loss = l.rt?.retentionLost(p, localPoint, now);
        if (loss === undefined) continue;
        lost.push({ subscription: l.name, from: loss.from, to: loss.to, pending: loss.pending });
        this.deps.metrics.subscriptionsLost.inc({ subscription: l.name });
      }
      if (lost.length > 0) await this.deps.engine.commit();
      // Cluster mode: a commit refused (the lease moved to another instance since) or failed left the
      // stored cursor behind: the new owner resumes from it, so the trim must not pass it.
      if (this.deps.cluster === true)
        for (const l of lost) {
          const stored = await this.#committedFloor(l.subscription, p, l.to);
          if (stored >= Math.min(cut, l.to)) continue;
          cut = stored;
          waitingFor.push({ subscription: l.subscription, offset: stored });
        }
    }
    const point = Math.min(localPoint, log.trimPoint(p, cut));
    if (point <= firstBefore)
      return { ...base, firstAfter: firstBefore, cut, waitingFor, lost, removedRecords: 0 };
    const removed = this.#removedStats(tally, point);
    const firstAfter = await log.trim(p, point);
    await this.#afterTrim(p, set, tally, firstAfter, removed);
    await this.#forget(p, firstAfter);
    return { ...base, firstAfter, cut, waitingFor, lost, removedRecords: firstAfter - firstBefore };
  }

  /** The ack floor of a subscription's last committed cursor on a partition (`dflt` when none). */
  async #committedFloor(name: string, p: number, dflt: number): Promise<number> {
    const c = (await this.deps.subscriptions.loadCursors(name)).find((x) => x.partition === p);
    return c === undefined ? dflt : cursorFloor(c, 0);
  }

  /**
   * Cluster mode: the subscriptions of the shared store that do not run here and whose committed cursor
   * on `p` is below `policyCut`. Their floor is the committed one (what their owner resumes from after
   * a crash or a move): the first pending offset at or above the log's first `first` (one below it is
   * gone already), else the read position. Without a committed cursor on `p` (or a definition without
   * topics) nothing is known of what it needs: its owner's runtime starts at the log's tail when it
   * takes it, at any offset up to now, and may hold records from there until it commits; such a
   * subscription holds the whole partition, as under `wait`, until a cursor is committed.
   */
  async #laggingElsewhere(
    p: number,
    first: number,
    policyCut: number,
    here: ReadonlySet<string>,
  ): Promise<Lagger[]> {
    const out: Lagger[] = [];
    for (const r of await this.deps.subscriptions.list()) {
      if (here.has(r.name)) continue;
      const topics = specTopics(r.spec);
      const c: CursorSnapshot | undefined = (await this.deps.subscriptions.loadCursors(r.name)).find(
        (x) => x.partition === p,
      );
      if (c === undefined || topics === undefined) {
        const floor = c === undefined ? first : cursorFloor(c, first);
        if (floor < policyCut) out.push({ name: r.name, topics: [], floor, atFloor: true, waits: true });
        continue;
      }
      const floor = cursorFloor(c, first);
      if (floor >= policyCut) continue;
      const pending = c.pending.some(([o]) => o >= first);
      out.push({ name: r.name, topics, floor, ...(pending ? { atFloor: true } : {}) });
    }
    return out;
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
   * when there is one). A subscription running on another instance (cluster mode) is held at the first
   * record it needs whatever the policy (at its floor when that is a committed pending entry): under
   * `wait` it holds the cut (`localCut`, the losses here too), under `drop` only the trim (`cut`), its
   * owner drops it. Stops as soon as every lagging subscription is held.
   */
  async #scanLagging(
    p: number,
    set: PolicySet,
    policyCut: number,
    lagging: readonly Lagger[],
  ): Promise<{
    localCut: number;
    cut: number;
    waitingFor: { subscription: string; offset: number }[];
    needs: Map<Lagger, number>;
  }> {
    let cut = policyCut;
    let trimCut = policyCut;
    const waitingFor: { subscription: string; offset: number }[] = [];
    const needs = new Map<Lagger, number>();
    const held = new Set<Lagger>();
    const hold = (l: Lagger, offset: number, waits: boolean): void => {
      held.add(l);
      waitingFor.push({ subscription: l.name, offset });
      if (waits) cut = Math.min(cut, offset);
      else trimCut = Math.min(trimCut, offset);
    };
    for (const l of lagging) if (l.atFloor === true && l.waits === true) hold(l, l.floor, true);
    let at = Math.min(...lagging.map((l) => l.floor));
    while (at < cut && held.size < lagging.length) {
      const recs = await this.deps.log.read(p, at, Math.min(READ_BATCH, cut - at));
      if (recs.length === 0) break;
      for (const r of recs) {
        if (r.offset >= cut) break;
        const topics = recordTopics(r);
        for (const l of lagging) {
          if (held.has(l) || r.offset < l.floor) continue;
          let needed = false;
          let waits = false;
          for (const t of topics) {
            if (!l.topics.some((pat) => topicMatches(pat, t))) continue;
            needed = true;
            if (set.policies[set.governing(t)]?.onUnacknowledged === 'wait') waits = true;
          }
          if (l.rt === undefined) {
            if (needed || l.atFloor === true) hold(l, r.offset, waits);
            continue;
          }
          if (needed && !needs.has(l)) needs.set(l, r.offset);
          if (!waits) continue;
          hold(l, r.offset, true);
        }
      }
      at = (recs[recs.length - 1] as LogRecord).offset + 1;
    }
    return { localCut: cut, cut: Math.min(cut, trimCut), waitingFor, needs };
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

/** A stored definition's topic patterns, or undefined when it has none readable. */
function specTopics(spec: Readonly<Record<string, unknown>>): string[] | undefined {
  const t = spec['topics'];
  return Array.isArray(t) && t.length > 0 && t.every((x) => typeof x === 'string') ? t : undefined;
}

/** A committed cursor's floor: its first pending offset not below `first`, else its read position. */
function cursorFloor(c: CursorSnapshot, first: number): number {
  const pending = c.pending.find(([o]) => o >= first);
  return pending === undefined ? c.next : Math.min(c.next, pending[0]);
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
