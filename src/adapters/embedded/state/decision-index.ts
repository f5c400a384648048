/**
 * The decision index on LMDB. Writes go to the index-writer worker (the hot path: batches of
 * thousands at up to ~100K entries/s, so the main thread only packs columns); reads are synchronous
 * LMDB look-ups on the main thread, which sees each batch as soon as the writer reports its commit.
 */
import type {
  DecisionIndex,
  DecisionIndexEntry,
  DecisionQuery,
  QueryMark,
  QueryPage,
  RevisionRef,
} from '../../../state/port.ts';
import { topicMatches } from '../../../domain/topics.ts';
import type { Key } from 'lmdb';
import {
  INDEXED_FIELDS,
  bucketOf,
  decodeMarks,
  entryFromTuple,
  sortMarks,
  toColumns,
  type MarkKey,
  type StateDbs,
} from './layout.ts';
import type { IndexWriterClient } from './index-writer-client.ts';

/** Entries a query examines before it returns a partial page, unless the caller says otherwise. */
export const DEFAULT_SCAN_LIMIT = 10_000;

// Above any receivedAt: the open upper end of a range.
const TOP = Number.MAX_SAFE_INTEGER;

/** DecisionIndex over the `decisions*` sub-databases. */
export class LmdbDecisionIndex implements DecisionIndex {
  constructor(
    private readonly dbs: StateDbs,
    private readonly writer: IndexWriterClient,
  ) {}

  add(entries: readonly DecisionIndexEntry[], through: Readonly<Record<number, number>>): Promise<void> {
    return this.writer.write(toColumns(entries), { ...through });
  }

  async checkpoint(): Promise<Record<number, number>> {
    const out: Record<number, number> = {};
    for (const { key, value } of this.dbs.decisionStats.getRange({ start: ['cp'], end: ['cp', TOP] })) {
      out[(key as [string, number])[1]] = value;
    }
    return out;
  }

  async revisions(decisionIds: readonly string[]): Promise<Map<string, RevisionRef[]>> {
    const out = new Map<string, RevisionRef[]>();
    const refs = this.dbs.decisionRefs;
    for (const id of decisionIds) {
      const flat = refs.get(id);
      if (flat === undefined) continue;
      const list: RevisionRef[] = [];
      for (let i = 0; i < flat.length; i += 4) {
        list.push({
          revision: flat[i] as number,
          partition: flat[i + 1] as number,
          offset: flat[i + 2] as number,
        });
      }
      out.set(id, list);
    }
    return out;
  }

  async get(decisionId: string, revision?: number): Promise<DecisionIndexEntry | undefined> {
    const flat = this.dbs.decisionRefs.get(decisionId);
    if (flat === undefined || flat.length === 0) return undefined;
    let i = flat.length - 4;
    if (revision !== undefined) while (i >= 0 && flat[i] !== revision) i -= 4;
    if (i < 0) return undefined;
    const key: MarkKey = [flat[i + 3] as number, flat[i + 1] as number, flat[i + 2] as number];
    const t = this.dbs.decisions.get(key);
    return t === undefined ? undefined : entryFromTuple(key, t);
  }

  async counts(): Promise<{ revisions: number; decisions: number }> {
    const s = this.dbs.decisionStats;
    return { revisions: s.get(['n', 'revisions']) ?? 0, decisions: s.get(['n', 'decisions']) ?? 0 };
  }

  async query(
    q: DecisionQuery,
    opts: { after?: QueryMark; limit: number; order: 'asc' | 'desc'; scanLimit?: number },
  ): Promise<QueryPage> {
    const scanLimit = Math.max(1, opts.scanLimit ?? DEFAULT_SCAN_LIMIT);
    const plan = this.plan(q);
    if (plan === 'empty' || opts.limit <= 0) return { entries: [] };
    const range: MarkRange = {
      lo: q.fromTime ?? 0,
      hi: q.toTime ?? TOP,
      desc: opts.order === 'desc',
      ...(opts.after === undefined
        ? {}
        : { after: [opts.after.receivedAt, opts.after.partition, opts.after.offset] }),
    };
    const marks = plan.field < 0 ? this.timeMarks(range) : this.postingMarks(plan.field, plan.value, range);
    const entries: DecisionIndexEntry[] = [];
    const latest = new Map<string, number>();
    let examined = 0;
    let last: MarkKey | undefined;
    try {
      for (let r = marks.next(); !r.done; r = marks.next()) {
        const mark = r.value;
        if (examined >= scanLimit) return { entries, next: markOf(last as MarkKey) };
        examined++;
        last = mark;
        const tuple = this.dbs.decisions.get(mark);
        if (tuple === undefined) continue;
        const e = entryFromTuple(mark, tuple);
        if (!matches(e, q, plan.field)) continue;
        if (q.latestOnly !== false && !this.isLatest(e, latest)) continue;
        entries.push(e);
        if (entries.length >= opts.limit) {
          // Peek one mark: a page that ends the range says so, sparing the caller an empty last page.
          return marks.next().done === true ? { entries } : { entries, next: markOf(mark) };
        }
      }
      return { entries };
    } finally {
      marks.return(undefined);
    }
  }

  /** Marks in query order from the time order itself (the `decisions` keys). */
  private *timeMarks(r: MarkRange): Generator<MarkKey, void, undefined> {
    let start: Key[] = [r.desc ? r.hi : r.lo];
    if (r.after !== undefined && (r.desc ? r.after[0] < r.hi : r.after[0] >= r.lo)) start = r.after;
    const keys = this.dbs.decisions.getKeys({
      start,
      end: [r.desc ? r.lo : r.hi],
      reverse: r.desc,
    }) as Iterable<MarkKey>;
    for (const k of keys) {
      if (r.after !== undefined && sameMark(k, r.after)) continue;
      yield k;
    }
  }

  /**
   * Marks in query order from the posting chunks of one field value: the chunks of a bucket are
   * merged and sorted (a late batch may add a chunk to an old bucket), then walked in order.
   */
  private *postingMarks(code: number, value: string, r: MarkRange): Generator<MarkKey, void, undefined> {
    let b0 = bucketOf(r.lo);
    let b1 = r.hi >= TOP ? TOP : bucketOf(r.hi - 1);
    if (r.after !== undefined) {
      if (r.desc) b1 = Math.min(b1, bucketOf(r.after[0]));
      else b0 = Math.max(b0, bucketOf(r.after[0]));
    }
    if (b0 > b1) return;
    const lowKey = [code, value, b0];
    const highKey = [code, value, b1 === TOP ? TOP : b1 + 1];
    const range = this.dbs.decisionIdx.getRange({
      start: r.desc ? highKey : lowKey,
      end: r.desc ? lowKey : highKey,
      reverse: r.desc,
    });
    let bucket = -1;
    let flat: number[] = [];
    const inRange = (t: number, p: number, o: number): boolean => {
      if (t < r.lo || t >= r.hi) return false;
      const a = r.after;
      if (a === undefined) return true;
      const c = t - a[0] || p - a[1] || o - a[2];
      return r.desc ? c < 0 : c > 0;
    };
    function* flush(): Generator<MarkKey, void, undefined> {
      if (flat.length === 0) return;
      const sorted = sortMarks(flat);
      flat = [];
      const n = sorted.length;
      for (let i = 0; i < n; i += 3) {
        const at = r.desc ? n - 3 - i : i;
        const t = sorted[at] as number;
        const p = sorted[at + 1] as number;
        const o = sorted[at + 2] as number;
        if (inRange(t, p, o)) yield [t, p, o];
      }
    }
    for (const { key, value: buf } of range) {
      const b = (key as Key[])[2] as number;
      if (b !== bucket) {
        yield* flush();
        bucket = b;
      }
      decodeMarks(buf, flat);
    }
    yield* flush();
  }

  /** The index to scan: the equality filter with the fewest entries, else the time order itself. */
  private plan(q: DecisionQuery): { field: number; value: string } | 'empty' {
    let best: { field: number; value: string; n: number } | undefined;
    for (let code = 0; code < INDEXED_FIELDS.length; code++) {
      const value = q[INDEXED_FIELDS[code] as (typeof INDEXED_FIELDS)[number]];
      if (value === undefined) continue;
      const n = this.dbs.decisionStats.get(['f', code, value]) ?? 0;
      if (n === 0) return 'empty';
      if (best === undefined || n < best.n) best = { field: code, value, n };
    }
    return best ?? { field: -1, value: '' };
  }

  /** Whether `e` is the highest stored revision of its decision (cached per query). */
  private isLatest(e: DecisionIndexEntry, cache: Map<string, number>): boolean {
    let top = cache.get(e.decisionId);
    if (top === undefined) {
      const flat = this.dbs.decisionRefs.get(e.decisionId);
      top = flat === undefined ? e.revision : (flat[flat.length - 4] as number);
      cache.set(e.decisionId, top);
    }
    return e.revision === top;
  }
}

/** Whether an entry satisfies every filter of `q` but the one the scanned index already guarantees. */
function matches(e: DecisionIndexEntry, q: DecisionQuery, scanned: number): boolean {
  for (let code = 0; code < INDEXED_FIELDS.length; code++) {
    if (code === scanned) continue;
    const f = INDEXED_FIELDS[code] as (typeof INDEXED_FIELDS)[number];
    const want = q[f];
    if (want !== undefined && e[f] !== want) return false;
  }
  if (q.minPriority !== undefined && e.priority < q.minPriority) return false;
  if (q.maxPriority !== undefined && e.priority > q.maxPriority) return false;
  if (q.fromTime !== undefined && e.receivedAt < q.fromTime) return false;
  if (q.toTime !== undefined && e.receivedAt >= q.toTime) return false;
  if (q.topic !== undefined) {
    const pattern = q.topic;
    if (!e.topics.some((t) => topicMatches(pattern, t))) return false;
  }
  return true;
}

/** Bounds of a query walk: receivedAt in [lo, hi), strictly after `after` in the walk's direction. */
interface MarkRange {
  readonly lo: number;
  readonly hi: number;
  readonly desc: boolean;
  readonly after?: MarkKey;
}

function sameMark(a: readonly number[], b: readonly number[]): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
}

function markOf(k: MarkKey): QueryMark {
  return { receivedAt: k[0], partition: k[1], offset: k[2] };
}
