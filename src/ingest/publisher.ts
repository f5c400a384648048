/**
 * The publish path (DESIGN 3 and 5): validate every item, route it, check scopes, decide duplicates
 * and revision conflicts, append the batch atomically and durably, then acknowledge. Index writes
 * follow the acknowledgement (see indexer.ts); until they are durable the decisions stay in an
 * in-memory "pending" view, so that idempotency and reads see them at once. In cluster mode (ADR
 * 0015) the new revisions of a batch are also reserved in the shared store before the append, so
 * that two instances never both append one decisionId+revision; reservations of an instance that
 * died are reconciled against the log.
 */
import { canonicalJson } from '../domain/canonical.ts';
import { IDENTITY_FIELDS, type Decision } from '../domain/decision.ts';
import { formatPosition } from '../domain/position.ts';
import { decisionErrors } from '../domain/validate.ts';
import { CdsError, validationError, type FieldError } from '../errors/index.ts';
import type { Appended, EventLog, LogRecord } from '../log/index.ts';
import type { DecisionIndex, DecisionIndexEntry, RevisionRef } from '../state/index.ts';
import type { Reservation, ReservationStore } from '../state/reservations-port.ts';
import { Indexer } from './indexer.ts';
import {
  recordDecision,
  recordRoute,
  recordTopics,
  toIndexEntry,
  toRecord,
  toStored,
  type RouteOutcome,
  type StoredDecision,
} from './record.ts';

/** Answer for one published item. */
export interface PublishResult {
  readonly decisionId: string;
  readonly revision: number;
  readonly position: string;
  readonly epoch: string;
  readonly topics: readonly string[];
  readonly duplicate: boolean;
  /** A rule dropped it: stored (auditable, explainable) with no topics, delivered to nobody. */
  readonly dropped?: true;
  /** A rule quarantined it: its one topic is the quarantine topic. */
  readonly quarantined?: true;
}

/** Routes a valid decision; throws VALIDATION_FAILED when a routed value is not usable. */
export type RouteFn = (d: Decision) => RouteOutcome;

/**
 * Gives the route function of the rule set active now. The publisher calls it once per batch, so
 * every item of a batch is routed by one whole rule set, never by two (ADR 0013).
 */
export type Router = () => RouteFn;

/** Checks that the caller may publish on the default topic; returns a reason when not. */
export type PublishCheck = (defaultTopic: string) => boolean;

/** A revision appended (or being appended) whose index entry is not yet durable. */
interface PendingRevision {
  readonly revision: number;
  readonly decision: Decision;
  readonly topics: readonly string[];
  readonly priority: number;
  readonly receivedAt: number;
  readonly key: string;
  readonly quarantined: boolean;
  at?: Appended;
  /** The append of its batch (shared by the batch), and its index in that append. */
  readonly batch: { done: Promise<Appended[]> };
  readonly index: number;
}

/** A revision known to exist, from whichever place knows it. */
type Known =
  | { kind: 'pending'; p: PendingRevision }
  | {
      kind: 'stored';
      ref: RevisionRef;
      decision: Decision;
      topics: readonly string[];
      quarantined: boolean;
    };

/** Cluster mode: where this instance reserves the revisions it appends (ADR 0015). */
export interface PublishCluster {
  readonly store: ReservationStore;
  /** This instance's member id. */
  readonly owner: string;
  /** How old a dead instance's reservation must be before it is reconciled, in ms. */
  readonly graceMs: number;
}

/** How long a publish waits for a revision another instance is appending (then 503, retriable). */
const FOREIGN_WAIT_MS = 2_000;
/** How far past a dead instance's reservation reconciliation reads the log (record timestamps). */
const RECONCILE_WINDOW_MS = 5 * 60_000;

/** Counters the status page and metrics read. */
export interface PublishCounters {
  published: number;
  duplicates: number;
  rejected: number;
  batches: number;
}

/** The publish path. */
export class Publisher {
  private readonly pending = new Map<string, PendingRevision[]>();
  private completions = 0;
  private inflight = 0;
  private draining = false;
  private drainWaiters: (() => void)[] = [];
  readonly indexer: Indexer;
  readonly counters: PublishCounters = { published: 0, duplicates: 0, rejected: 0, batches: 0 };

  constructor(
    private readonly log: EventLog,
    private readonly index: DecisionIndex,
    private readonly router: Router,
    private readonly opts: {
      maxBatch: number;
      maxBacklog?: number;
      onError: (e: unknown) => void;
      cluster?: PublishCluster;
    },
  ) {
    this.indexer = new Indexer(
      index,
      (entries) => this.indexed(entries),
      opts.onError,
      opts.cluster === undefined ? undefined : log, // shared: other instances append to it too
    );
  }

  /** Stops accepting publishes; resolves when in-flight ones have finished and the index is written. */
  async drain(): Promise<void> {
    this.draining = true;
    if (this.inflight > 0) await new Promise<void>((r) => this.drainWaiters.push(r));
    await this.indexer.idle();
  }

  /** Whether publishes are refused for shutdown. */
  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Publishes items atomically: all are stored, or none. `paths` says how field paths are prefixed
   * (batch items as `/3/...`, a single decision at the root).
   */
  async publish(
    items: readonly unknown[],
    batch: boolean,
    mayPublish: PublishCheck,
  ): Promise<PublishResult[]> {
    if (this.draining)
      throw new CdsError('SHUTTING_DOWN', 'this instance is shutting down; retry', { retryAfterSeconds: 1 });
    if (items.length > this.opts.maxBatch) {
      throw new CdsError(
        'BATCH_TOO_LARGE',
        `a batch holds at most ${this.opts.maxBatch} decisions; this one has ${items.length}`,
        {
          details: { max: this.opts.maxBatch, count: items.length },
        },
      );
    }
    if (items.length === 0)
      throw validationError('an empty batch', [
        { path: '', code: 'too_small', message: 'a batch holds at least one decision' },
      ]);
    this.inflight++;
    try {
      return await this.publishValid(this.validate(items, batch, mayPublish), batch);
    } catch (e) {
      this.counters.rejected += items.length;
      throw e;
    } finally {
      if (--this.inflight === 0 && this.draining) for (const w of this.drainWaiters.splice(0)) w();
    }
  }

  private validate(
    items: readonly unknown[],
    batch: boolean,
    mayPublish: PublishCheck,
  ): { d: Decision; route: RouteOutcome }[] {
    const errors: FieldError[] = [];
    const badItems: { index: number; errors: FieldError[] }[] = [];
    const forbidden: { index: number; topic: string }[] = [];
    const out: { d: Decision; route: RouteOutcome }[] = [];
    const routeOf = this.router(); // one rule set for the whole batch
    items.forEach((item, i) => {
      const prefix = batch ? `/${i}` : '';
      let errs = decisionErrors(item, prefix);
      if (errs.length === 0) {
        const d = item as Decision;
        try {
          const route = routeOf(d);
          out.push({ d, route });
          // DESIGN 4: scopes are checked against the default topic, whatever the rules added.
          const scoped = route.defaultTopic ?? (route.topics[0] as string);
          if (!mayPublish(scoped)) forbidden.push({ index: i, topic: scoped });
        } catch (e) {
          if (!(e instanceof CdsError) || !Array.isArray(e.details?.['errors'])) throw e;
          errs = (e.details['errors'] as FieldError[]).map((f) => ({ ...f, path: `${prefix}${f.path}` }));
        }
      }
      if (errs.length > 0) {
        errors.push(...errs);
        badItems.push({ index: i, errors: errs });
      }
    });
    if (errors.length > 0) {
      throw validationError(
        batch
          ? `${badItems.length} of ${items.length} decisions are invalid; nothing was stored`
          : 'the decision is invalid; nothing was stored',
        errors,
        batch ? { items: badItems } : {},
      );
    }
    if (forbidden.length > 0) {
      throw new CdsError(
        'FORBIDDEN',
        `no publish scope for topic ${forbidden[0]?.topic}${forbidden.length > 1 ? ` (and ${forbidden.length - 1} more)` : ''}`,
        {
          details: { items: forbidden },
        },
      );
    }
    return out;
  }

  private async publishValid(
    items: { d: Decision; route: RouteOutcome }[],
    batch: boolean,
    attempt = 0,
  ): Promise<PublishResult[]> {
    const maxBacklog = this.opts.maxBacklog ?? 500_000;
    while (this.indexer.backlog > maxBacklog) await this.indexer.idle();
    const ids = [...new Set(items.map((x) => x.d.decisionId))];
    // Look up what the index knows (and, in cluster mode, what other instances reserved), then decide
    // synchronously; redo if an index write completed in between (its entries left `pending` and
    // might be missing from the look-up).
    let known: Map<string, Known[]>;
    const waitUntil = Date.now() + FOREIGN_WAIT_MS;
    for (;;) {
      const before = this.completions;
      const reserved = await this.foreignRefs(ids, waitUntil);
      known = await this.lookup(ids, items, reserved);
      if (before === this.completions) break;
    }
    const receivedAt = Date.now();
    const results: (PublishResult | Promise<PublishResult>)[] = [];
    const fresh: { d: Decision; route: RouteOutcome; p: PendingRevision; slot: number }[] = [];
    // One promise for the whole batch's append: concurrent duplicates of its revisions wait on it.
    let settle!: { resolve: (a: Appended[]) => void; reject: (e: unknown) => void };
    const batchAppend = {
      done: new Promise<Appended[]>((resolve, reject) => (settle = { resolve, reject })),
    };
    batchAppend.done.catch(() => undefined); // waiters handle it; none may exist
    const conflicts: FieldError[] = [];
    let conflictCode: 'REVISION_CONFLICT' | 'IDENTITY_CHANGED' = 'REVISION_CONFLICT';
    const local = new Map<string, PendingRevision[]>();
    items.forEach(({ d, route }, i) => {
      const prefix = batch ? `/${i}` : '';
      const stored = known.get(d.decisionId);
      const pend = this.pending.get(d.decisionId);
      const mine = local.get(d.decisionId);
      // The common case, a decision never seen: nothing to compare.
      const revs: Known[] =
        stored === undefined && pend === undefined && mine === undefined
          ? []
          : [
              ...(stored ?? []),
              ...(pend ?? []).map((p): Known => ({ kind: 'pending', p })),
              ...(mine ?? []).map((p): Known => ({ kind: 'pending', p })),
            ];
      let max: Known | undefined;
      for (const k of revs) if (max === undefined || revOf(k) > revOf(max)) max = k;
      if (max !== undefined && d.revision <= revOf(max)) {
        const same = revs.find((k) => revOf(k) === d.revision);
        if (same === undefined || canonicalJson(bodyOf(same)) !== canonicalJson(d)) {
          conflicts.push({
            path: `${prefix}/revision`,
            code: 'revision_conflict',
            message:
              same === undefined
                ? `revision ${d.revision} of '${d.decisionId}' is below the highest stored (${revOf(max)}) and was never stored`
                : `revision ${d.revision} of '${d.decisionId}' is already stored with a different body`,
          });
          return;
        }
        this.counters.duplicates++;
        results.push(resultOf(same, this.log.epoch));
        return;
      }
      if (max !== undefined) {
        const prev = bodyOf(max);
        const changed = IDENTITY_FIELDS.filter((f) => canonicalJson(prev[f]) !== canonicalJson(d[f]));
        if (changed.length > 0) {
          conflictCode = 'IDENTITY_CHANGED';
          for (const f of changed) {
            conflicts.push({
              path: `${prefix}/${f}`,
              code: 'identity_changed',
              message: `differs from revision ${revOf(max)}; identifying fields never change across revisions`,
            });
          }
          return;
        }
      }
      const p: PendingRevision = {
        revision: d.revision,
        decision: d,
        topics: route.topics,
        priority: route.priority,
        receivedAt,
        key: route.key,
        quarantined: route.quarantined !== undefined,
        batch: batchAppend,
        index: fresh.length,
      };
      let l = local.get(d.decisionId);
      if (l === undefined) local.set(d.decisionId, (l = []));
      l.push(p);
      fresh.push({ d, route, p, slot: results.length });
      results.push(undefined as unknown as PublishResult); // filled after the append
    });
    if (conflicts.length > 0) {
      throw new CdsError(
        conflictCode,
        conflicts.length === 1
          ? (conflicts[0] as FieldError).message
          : `${conflicts.length} conflicts; nothing was stored`,
        {
          details: { errors: conflicts },
        },
      );
    }
    for (const [id, l] of local) {
      const cur = this.pending.get(id);
      if (cur) cur.push(...l);
      else this.pending.set(id, [...l]);
    }
    if (fresh.length > 0) {
      const cluster = this.opts.cluster;
      let reservations: Reservation[] = [];
      if (cluster !== undefined) {
        const ext = this.log.extents();
        reservations = fresh.map((f) => {
          const partition = this.log.partitionOf(f.route.key);
          const fromOffset = ext[partition]?.next ?? 0;
          return {
            decisionId: f.d.decisionId,
            revision: f.d.revision,
            owner: cluster.owner,
            partition,
            fromOffset,
            receivedAt,
          };
        });
        const revs = new Map<string, number[]>();
        for (const [id, list] of known) revs.set(id, list.map(revOf));
        const outcome = await cluster.store
          .reserve(cluster.owner, reservations, revs)
          .catch((e: unknown) => e);
        if (outcome !== 'ok') {
          // Another instance stored or reserved a revision of these ids since the look-up: nothing was
          // reserved; decide again (a concurrent local duplicate waiting on this batch retries too).
          for (const f of fresh) this.forgetPending(f.d.decisionId, f.p);
          const e =
            outcome === 'changed'
              ? new CdsError(
                  'STORAGE_UNAVAILABLE',
                  'a revision of this decision was published meanwhile; retry',
                  {
                    retryAfterSeconds: 1,
                  },
                )
              : outcome;
          settle.reject(e);
          if (outcome === 'changed' && attempt < 3) return this.publishValid(items, batch, attempt + 1);
          throw e;
        }
      }
      let appended: Appended[];
      try {
        appended = await this.log.append(fresh.map((f) => toRecord(f.d, f.route, receivedAt)));
      } catch (e) {
        for (const f of fresh) this.forgetPending(f.d.decisionId, f.p);
        if (cluster !== undefined) void cluster.store.release(reservations).catch(this.opts.onError);
        settle.reject(e);
        throw e instanceof CdsError
          ? e
          : new CdsError('STORAGE_UNAVAILABLE', 'the log could not store the batch; nothing was stored', {
              cause: e,
              retryAfterSeconds: 1,
            });
      }
      settle.resolve(appended);
      // Cluster mode: other instances now answer a duplicate of these from the log at once.
      if (cluster !== undefined)
        void cluster.store
          .confirm(
            fresh.map((f, i) => ({
              decisionId: f.d.decisionId,
              revision: f.d.revision,
              offset: (appended[i] as Appended).offset,
            })),
          )
          .catch(this.opts.onError);
      const byPartition = new Map<number, { first: number; entries: DecisionIndexEntry[] }>();
      fresh.forEach((f, i) => {
        const at = appended[i] as Appended;
        f.p.at = at;
        results[f.slot] = {
          decisionId: f.d.decisionId,
          revision: f.d.revision,
          position: formatPosition(at.partition, at.offset),
          epoch: this.log.epoch,
          topics: f.route.topics,
          duplicate: false,
          ...flags(f.route.topics, f.route.quarantined !== undefined),
        };
        let b = byPartition.get(at.partition);
        if (b === undefined) byPartition.set(at.partition, (b = { first: at.offset, entries: [] }));
        b.entries.push(
          toIndexEntry(f.d, f.route.topics, f.route.priority, at.partition, at.offset, receivedAt),
        );
      });
      for (const [partition, b] of byPartition) {
        b.entries.sort((x, y) => x.offset - y.offset);
        this.indexer.submit(partition, (b.entries[0] as DecisionIndexEntry).offset, b.entries);
      }
      this.counters.published += fresh.length;
    }
    this.counters.batches++;
    return Promise.all(results);
  }

  /**
   * Cluster mode: the revisions of these ids other instances reserved and appended but not yet
   * indexed, as refs. A revision another instance is still appending is waited for (until
   * `waitUntil`, then STORAGE_UNAVAILABLE, retriable); one of an instance that died is reconciled
   * against the log first.
   */
  private async foreignRefs(ids: string[], waitUntil: number): Promise<Map<string, RevisionRef[]>> {
    const out = new Map<string, RevisionRef[]>();
    const cluster = this.opts.cluster;
    if (cluster === undefined) return out;
    for (;;) {
      const found = await cluster.store.find(ids, cluster.owner, cluster.graceMs);
      const open = [...found.values()].flat().filter((r) => r.offset === undefined);
      if (open.length === 0) {
        for (const [id, list] of found)
          out.set(
            id,
            list.map((r) => ({ revision: r.revision, partition: r.partition, offset: r.offset as number })),
          );
        return out;
      }
      const stale = open.filter((r) => r.stale);
      if (stale.length > 0) await this.reconcile(stale);
      else if (Date.now() > waitUntil)
        throw new CdsError(
          'STORAGE_UNAVAILABLE',
          `revision ${open[0]?.revision} of '${open[0]?.decisionId}' is being published through another instance; retry`,
          { retryAfterSeconds: 1 },
        );
      else await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * Cluster mode: settles reservations whose instance died before it indexed them (all such, or the
   * given ones). Each is looked for in the log from where its append would have landed: found, it is
   * indexed here and released; not found, the append never happened and it is released. Resolves how
   * many were settled. Runs at start (DESIGN 6) and when a publish meets one.
   */
  async reconcile(list?: readonly Reservation[]): Promise<number> {
    const cluster = this.opts.cluster;
    if (cluster === undefined) return 0;
    const stale = list ?? (await cluster.store.stale(cluster.graceMs));
    for (const r of stale) {
      const rec = await this.findRecord(r);
      if (rec !== undefined) {
        const d = recordDecision(rec);
        const entry = toIndexEntry(
          d,
          recordTopics(rec),
          Number(rec.headers['priority'] ?? d.priority),
          rec.partition,
          rec.offset,
          rec.timestamp,
        );
        await this.index.add([entry], {});
      }
      await cluster.store.release([r]);
    }
    return stale.length;
  }

  /** The record of a reservation in the log, read from where its append would have landed. */
  private async findRecord(r: Reservation): Promise<LogRecord | undefined> {
    let from = r.fromOffset;
    for (;;) {
      const recs = await this.log.read(r.partition, from, 1024);
      if (recs.length === 0) return undefined;
      for (const rec of recs) {
        if (rec.headers['decisionId'] === r.decisionId && rec.headers['revision'] === String(r.revision))
          return rec;
        if (rec.timestamp > r.receivedAt + RECONCILE_WINDOW_MS) return undefined;
      }
      from = (recs[recs.length - 1] as LogRecord).offset + 1;
    }
  }

  /** Stored revisions of the ids, with the bodies needed to compare duplicates and identities. */
  private async lookup(
    ids: string[],
    items: { d: Decision }[],
    reserved: ReadonlyMap<string, RevisionRef[]> = new Map(),
  ): Promise<Map<string, Known[]>> {
    const refs = await this.index.revisions(ids);
    for (const [id, extra] of reserved) {
      const list = refs.get(id) ?? [];
      for (const x of extra) if (!list.some((r) => r.revision === x.revision)) list.push(x);
      list.sort((a, b) => a.revision - b.revision);
      refs.set(id, list);
    }
    const out = new Map<string, Known[]>();
    if (refs.size === 0) return out;
    const wanted = new Map<string, Set<number>>();
    for (const { d } of items) {
      const r = refs.get(d.decisionId);
      if (r === undefined || r.length === 0) continue;
      let w = wanted.get(d.decisionId);
      if (w === undefined) wanted.set(d.decisionId, (w = new Set()));
      w.add(d.revision);
      w.add((r[r.length - 1] as RevisionRef).revision);
    }
    await Promise.all(
      [...refs].map(async ([id, list]) => {
        const w = wanted.get(id);
        const known: Known[] = [];
        for (const ref of list) {
          if (!w?.has(ref.revision)) {
            known.push({
              kind: 'stored',
              ref,
              decision: undefined as unknown as Decision,
              topics: [],
              quarantined: false,
            });
            continue;
          }
          const rec = await this.log.readOne(ref.partition, ref.offset);
          if (rec === undefined) continue; // trimmed: the revision cannot be compared any more
          known.push({
            kind: 'stored',
            ref,
            decision: recordDecision(rec),
            topics: recordTopics(rec),
            quarantined: recordRoute(rec).quarantined !== undefined,
          });
        }
        out.set(id, known);
      }),
    );
    return out;
  }

  private indexed(entries: readonly DecisionIndexEntry[]): void {
    // Cluster mode: an indexed revision needs its reservation no more (the index now answers for it).
    void this.opts.cluster?.store
      .release(entries.map((e) => ({ decisionId: e.decisionId, revision: e.revision })))
      .catch(this.opts.onError);
    for (const e of entries) {
      const list = this.pending.get(e.decisionId);
      if (list === undefined) continue;
      const i = list.findIndex(
        (p) => p.revision === e.revision && p.at?.offset === e.offset && p.at.partition === e.partition,
      );
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.pending.delete(e.decisionId);
    }
    this.completions++;
  }

  private forgetPending(id: string, p: PendingRevision): void {
    const list = this.pending.get(id);
    if (list === undefined) return;
    const i = list.indexOf(p);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.pending.delete(id);
  }

  /** A stored decision by id (latest revision, or the given one), including ones still being indexed. */
  async get(
    decisionId: string,
    revision?: number,
  ): Promise<{ stored: StoredDecision; revisions: number[] } | undefined> {
    const pend = (this.pending.get(decisionId) ?? []).filter((p) => p.at !== undefined);
    const refs = (await this.index.revisions([decisionId])).get(decisionId) ?? [];
    const all = new Map<number, { partition: number; offset: number }>();
    for (const r of refs) all.set(r.revision, r);
    for (const p of pend) all.set(p.revision, p.at as Appended);
    if (all.size === 0) return undefined;
    const revisions = [...all.keys()].sort((a, b) => a - b);
    const want = revision ?? (revisions[revisions.length - 1] as number);
    const at = all.get(want);
    if (at === undefined) return undefined;
    const rec = await this.log.readOne(at.partition, at.offset);
    if (rec === undefined) return undefined;
    return { stored: toStored(rec, this.log.epoch), revisions };
  }

  /**
   * Reads the stored decisions of index entries, in the given order (trimmed ones are left out).
   * Runs of consecutive offsets are read with one range read, so an unfiltered page costs a few reads.
   */
  async load(entries: readonly DecisionIndexEntry[]): Promise<StoredDecision[]> {
    const byPos = new Map<string, LogRecord>();
    const sorted = [...entries].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    const runs: { partition: number; from: number; count: number }[] = [];
    for (const e of sorted) {
      const last = runs[runs.length - 1];
      if (last && last.partition === e.partition && last.from + last.count === e.offset) last.count++;
      else if (!last || last.partition !== e.partition || last.from + last.count - 1 !== e.offset)
        runs.push({ partition: e.partition, from: e.offset, count: 1 });
    }
    await Promise.all(
      runs.map(async (r) => {
        const recs = await this.log.read(r.partition, r.from, r.count);
        for (const rec of recs) byPos.set(`${rec.partition}:${rec.offset}`, rec);
      }),
    );
    const out: StoredDecision[] = [];
    for (const e of entries) {
      const rec = byPos.get(`${e.partition}:${e.offset}`);
      if (rec !== undefined) out.push(toStored(rec, this.log.epoch));
    }
    return out;
  }
}

function revOf(k: Known): number {
  return k.kind === 'pending' ? k.p.revision : k.ref.revision;
}

function bodyOf(k: Known): Decision {
  return k.kind === 'pending' ? k.p.decision : k.decision;
}

async function resultOf(k: Known, epoch: string): Promise<PublishResult> {
  if (k.kind === 'pending') {
    const at = k.p.at ?? ((await k.p.batch.done)[k.p.index] as Appended);
    return {
      decisionId: k.p.decision.decisionId,
      revision: k.p.revision,
      position: formatPosition(at.partition, at.offset),
      epoch,
      topics: k.p.topics,
      duplicate: true,
      ...flags(k.p.topics, k.p.quarantined),
    };
  }
  return {
    decisionId: k.decision.decisionId,
    revision: k.ref.revision,
    position: formatPosition(k.ref.partition, k.ref.offset),
    epoch,
    topics: k.topics,
    duplicate: true,
    ...flags(k.topics, k.quarantined),
  };
}

/** The `dropped` / `quarantined` flags of an answer (absent in the common case). */
function flags(topics: readonly string[], quarantined: boolean): { dropped?: true; quarantined?: true } {
  if (topics.length === 0) return { dropped: true };
  return quarantined ? { quarantined: true } : {};
}
