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
import { INDEXED_FIELDS, entryFromTuple, toColumns, type MarkKey, type StateDbs } from './layout.ts';
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
    const desc = opts.order === 'desc';
    const lo = q.fromTime ?? 0;
    const hi = q.toTime ?? TOP;
    let start: Key[] = desc ? [...plan.prefix, hi] : [...plan.prefix, lo];
    const end: Key[] = desc ? [...plan.prefix, lo] : [...plan.prefix, hi];
    const after = opts.after;
    if (after !== undefined) {
      // Resume at the mark itself (skipped below) unless the time bound is already past it.
      const m = [after.receivedAt, after.partition, after.offset];
      if (desc ? after.receivedAt < hi : after.receivedAt >= lo) start = [...plan.prefix, ...m];
    }
    const n = plan.prefix.length;
    const range = plan.db.getKeys({ start, end, reverse: desc, snapshot: true }) as Iterable<Key[]>;
    const iter = range[Symbol.iterator]();
    const entries: DecisionIndexEntry[] = [];
    const latest = new Map<string, number>();
    let examined = 0;
    let last: MarkKey | undefined;
    for (let r = iter.next(); !r.done; r = iter.next()) {
      const k = r.value;
      const mark = (n === 0 ? k : k.slice(n)) as MarkKey;
      if (desc && mark[0] >= hi) continue; // the reverse start [hi] bound is inclusive of its prefix only
      if (
        after !== undefined &&
        mark[0] === after.receivedAt &&
        mark[1] === after.partition &&
        mark[2] === after.offset
      )
        continue;
      if (examined >= scanLimit) {
        iter.return?.();
        return { entries, next: markOf(last as MarkKey) };
      }
      examined++;
      last = mark;
      const tuple = this.dbs.decisions.get(mark);
      if (tuple === undefined) continue;
      const e = entryFromTuple(mark, tuple);
      if (!matches(e, q, plan.field)) continue;
      if (q.latestOnly !== false && !this.isLatest(e, latest)) continue;
      entries.push(e);
      if (entries.length >= opts.limit) {
        // Peek one key: a page that ends the range says so, sparing the caller an empty last page.
        const more = iter.next();
        if (more.done) return { entries };
        iter.return?.();
        return { entries, next: markOf(mark) };
      }
    }
    return { entries };
  }

  /** The index to scan: the equality filter with the fewest entries, else the time order itself. */
  private plan(
    q: DecisionQuery,
  ): { db: StateDbs['decisions'] | StateDbs['decisionIdx']; prefix: Key[]; field: number } | 'empty' {
    let best: { code: number; value: string; n: number } | undefined;
    for (let code = 0; code < INDEXED_FIELDS.length; code++) {
      const value = q[INDEXED_FIELDS[code] as (typeof INDEXED_FIELDS)[number]];
      if (value === undefined) continue;
      const n = this.dbs.decisionStats.get(['f', code, value]) ?? 0;
      if (n === 0) return 'empty';
      if (best === undefined || n < best.n) best = { code, value, n };
    }
    if (best === undefined) return { db: this.dbs.decisions, prefix: [], field: -1 };
    return { db: this.dbs.decisionIdx, prefix: [best.code, best.value], field: best.code };
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

function markOf(k: MarkKey): QueryMark {
  return { receivedAt: k[0], partition: k[1], offset: k[2] };
}
