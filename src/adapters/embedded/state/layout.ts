/**
 * The on-disk layout of the embedded state store, shared by the main thread (reads, small writes)
 * and the index-writer worker (decision index writes), so both open and encode the same way.
 *
 * One LMDB environment, named sub-databases:
 * - `principals`: id -> Principal; `principalKeys`: keyHash -> id.
 * - `audit`: seq -> AuditRecord.
 * - `meta`: key -> string.
 * - `decisions`: [receivedAt, partition, offset] -> EntryTuple. The key order is the query order, so
 *   this database is also the time index.
 * - `decisionRefs`: decisionId -> flat [revision, partition, offset, receivedAt, ...] ascending by
 *   revision: one sync get answers `revisions()` and finds the latest revision.
 * - `decisionIdx`: [field code, value, bucket, partition, offset] -> sorted marks: the secondary indexes
 *   as posting chunks (see writeBatch).
 * - `decisionStats`: ['cp', partition] -> next offset; ['n', 'revisions' | 'decisions'] -> count;
 *   ['f', field code, value] -> count (to pick the most selective index).
 */
import { open, type Database, type Key, type RootDatabase } from 'lmdb';
import type { DecisionIndexEntry } from '../../../state/port.ts';

/** Fields with a secondary index, by their stable code (the code is part of the stored keys: never renumber). */
export const INDEXED_FIELDS = [
  'portfolioId',
  'strategyId',
  'symbol',
  'assetClass',
  'type',
  'verdict',
] as const;

/** A field with a secondary index. */
export type IndexedField = (typeof INDEXED_FIELDS)[number];

/** Stored value of one index entry: what the key (receivedAt, partition, offset) does not already hold. */
export type EntryTuple = [
  decisionId: string,
  revision: number,
  portfolioId: string,
  strategyId: string,
  symbol: string,
  assetClass: string,
  type: string,
  verdict: string,
  priority: number,
  topics: string[],
];

/** The key of an entry in `decisions` (and the tail of its `decisionIdx` keys). */
export type MarkKey = [receivedAt: number, partition: number, offset: number];

/** The sub-databases of the store. */
export interface StateDbs {
  readonly env: RootDatabase;
  readonly principals: Database;
  readonly principalKeys: Database<string, string>;
  readonly audit: Database;
  readonly meta: Database<string, string>;
  readonly decisions: Database<EntryTuple, MarkKey>;
  readonly decisionRefs: Database<number[], string>;
  readonly decisionIdx: Database<Uint8Array, Key[]>;
  readonly decisionStats: Database<number, Key[]>;
}

/** Opens (creating if needed) the environment at `path` and its sub-databases. */
export function openDbs(path: string): StateDbs {
  // Default sync: each commit is durable before its promise (or transactionSync) returns.
  const env = open({ path, maxDbs: 16, compression: false });
  return {
    env,
    principals: env.openDB({ name: 'principals' }),
    principalKeys: env.openDB({ name: 'principalKeys', encoding: 'string' }),
    audit: env.openDB({ name: 'audit' }),
    meta: env.openDB({ name: 'meta', encoding: 'string' }),
    decisions: env.openDB({ name: 'decisions' }),
    decisionRefs: env.openDB({ name: 'decisionRefs' }),
    decisionIdx: env.openDB({ name: 'decisionIdx', encoding: 'binary' }),
    decisionStats: env.openDB({ name: 'decisionStats' }),
  };
}

/** Rebuilds an entry from its key and stored tuple. */
export function entryFromTuple(key: MarkKey, t: EntryTuple): DecisionIndexEntry {
  return {
    decisionId: t[0],
    revision: t[1],
    partition: key[1],
    offset: key[2],
    receivedAt: key[0],
    portfolioId: t[2],
    strategyId: t[3],
    symbol: t[4],
    assetClass: t[5],
    type: t[6],
    verdict: t[7],
    priority: t[8],
    topics: t[9],
  };
}

/**
 * A batch of entries as columns. Structured clone copies a few arrays of primitives much faster
 * than a thousand small objects, and the main thread pays for that copy on every `add()`.
 */
export interface EntryColumns {
  readonly n: number;
  /** receivedAt, partition, offset, revision, priority of each entry, 5 per entry. */
  readonly nums: Float64Array;
  /** decisionId, portfolioId, strategyId, symbol, assetClass, type, verdict of each entry, 7 per entry. */
  readonly strs: string[];
  /** Topics of each entry. */
  readonly topics: string[][];
}

/** Packs entries into columns (on the main thread, before posting them to the writer). */
export function toColumns(entries: readonly DecisionIndexEntry[]): EntryColumns {
  const n = entries.length;
  const nums = new Float64Array(n * 5);
  const strs = new Array<string>(n * 7);
  const topics = new Array<string[]>(n);
  for (let i = 0; i < n; i++) {
    const e = entries[i] as DecisionIndexEntry;
    const j = i * 5;
    nums[j] = e.receivedAt;
    nums[j + 1] = e.partition;
    nums[j + 2] = e.offset;
    nums[j + 3] = e.revision;
    nums[j + 4] = e.priority;
    const k = i * 7;
    strs[k] = e.decisionId;
    strs[k + 1] = e.portfolioId;
    strs[k + 2] = e.strategyId;
    strs[k + 3] = e.symbol;
    strs[k + 4] = e.assetClass;
    strs[k + 5] = e.type;
    strs[k + 6] = e.verdict;
    topics[i] = e.topics as string[];
  }
  return { n, nums, strs, topics };
}

/** Width of a posting bucket in ms: queries merge-sort one bucket's chunks at a time. */
export const BUCKET_MS = 100;

/** The posting bucket of a receivedAt. */
export function bucketOf(receivedAt: number): number {
  return Math.floor(receivedAt / BUCKET_MS);
}

/** Marks of a posting chunk, as stored: float64 little-endian (receivedAt, partition, offset) triples, ascending. */
export function decodeMarks(buf: Uint8Array, into: number[]): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = 0; i + 8 <= buf.byteLength; i += 8) into.push(view.getFloat64(i, true));
}

/**
 * Writes a batch and the checkpoint; must run inside one write transaction (the worker wraps it in
 * `transactionSync`) so that entries and checkpoint commit atomically. An entry whose decisionId and
 * revision are already indexed is skipped.
 *
 * Secondary indexes are posting chunks, not one key per entry: per batch, each (field, value, bucket)
 * gets one key `[field code, value, bucket, partition, offset of its first mark]` holding the sorted
 * marks. LMDB's cost is per B-tree insert (about 4 us here), so this turns six inserts per entry into
 * about one and a quarter for a realistic batch.
 */
export function writeBatch(dbs: StateDbs, c: EntryColumns, through: Readonly<Record<number, number>>): void {
  const { decisions, decisionRefs, decisionIdx, decisionStats } = dbs;
  const chunks = new Map<string, { code: number; value: string; bucket: number; marks: number[] }>();
  const fieldCounts = new Map<string, { code: number; value: string; n: number }>();
  const refsCache = new Map<string, number[]>();
  let newRevisions = 0;
  let newDecisions = 0;
  for (let i = 0; i < c.n; i++) {
    const j = i * 5;
    const k = i * 7;
    const t = c.nums[j] as number;
    const p = c.nums[j + 1] as number;
    const o = c.nums[j + 2] as number;
    const rev = c.nums[j + 3] as number;
    const id = c.strs[k] as string;
    let refs = refsCache.get(id) ?? decisionRefs.get(id);
    if (refs === undefined) {
      refs = [];
      newDecisions++;
    } else if (hasRevision(refs, rev)) {
      continue;
    }
    refs = insertRef(refs, rev, p, o, t);
    refsCache.set(id, refs);
    newRevisions++;
    const tuple: EntryTuple = [
      id,
      rev,
      c.strs[k + 1] as string,
      c.strs[k + 2] as string,
      c.strs[k + 3] as string,
      c.strs[k + 4] as string,
      c.strs[k + 5] as string,
      c.strs[k + 6] as string,
      c.nums[j + 4] as number,
      c.topics[i] as string[],
    ];
    decisions.putSync([t, p, o], tuple);
    const bucket = bucketOf(t);
    for (let f = 0; f < INDEXED_FIELDS.length; f++) {
      const value = c.strs[k + 1 + f] as string;
      const ck = `${f}\u0000${bucket}\u0000${value}`;
      const chunk = chunks.get(ck);
      if (chunk === undefined) chunks.set(ck, { code: f, value, bucket, marks: [t, p, o] });
      else chunk.marks.push(t, p, o);
      const fk = `${f}\u0000${value}`;
      const fc = fieldCounts.get(fk);
      if (fc === undefined) fieldCounts.set(fk, { code: f, value, n: 1 });
      else fc.n++;
    }
  }
  for (const [id, refs] of refsCache) decisionRefs.putSync(id, refs);
  for (const ch of chunks.values()) {
    const marks = sortMarks(ch.marks);
    decisionIdx.putSync(
      [ch.code, ch.value, ch.bucket, marks[1] as number, marks[2] as number],
      encodeMarks(marks),
    );
  }
  for (const fc of fieldCounts.values()) {
    const key = ['f', fc.code, fc.value];
    decisionStats.putSync(key, (decisionStats.get(key) ?? 0) + fc.n);
  }
  if (newRevisions > 0)
    decisionStats.putSync(['n', 'revisions'], (decisionStats.get(['n', 'revisions']) ?? 0) + newRevisions);
  if (newDecisions > 0)
    decisionStats.putSync(['n', 'decisions'], (decisionStats.get(['n', 'decisions']) ?? 0) + newDecisions);
  for (const [partition, next] of Object.entries(through))
    decisionStats.putSync(['cp', Number(partition)], next);
}

function encodeMarks(marks: Float64Array): Uint8Array {
  const out = new Uint8Array(marks.length * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < marks.length; i++) view.setFloat64(i * 8, marks[i] as number, true);
  return out;
}

/** Flat (receivedAt, partition, offset) triples sorted ascending. */
export function sortMarks(flat: readonly number[]): Float64Array {
  const n = flat.length / 3;
  let sorted = true;
  for (let i = 3; i < flat.length && sorted; i += 3) sorted = compareAt(flat, i - 3, flat, i) <= 0;
  const out = new Float64Array(flat.length);
  if (sorted) {
    out.set(flat);
    return out;
  }
  const order = Array.from({ length: n }, (_, i) => i * 3).sort((a, b) => compareAt(flat, a, flat, b));
  order.forEach((from, i) => {
    out[i * 3] = flat[from] as number;
    out[i * 3 + 1] = flat[from + 1] as number;
    out[i * 3 + 2] = flat[from + 2] as number;
  });
  return out;
}

function compareAt(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number): number {
  return (
    (a[i] as number) - (b[j] as number) ||
    (a[i + 1] as number) - (b[j + 1] as number) ||
    (a[i + 2] as number) - (b[j + 2] as number)
  );
}

/** Several batches as one, in order (for the writer's group commit). */
export function concatColumns(parts: readonly EntryColumns[]): EntryColumns {
  const n = parts.reduce((x, c) => x + c.n, 0);
  const nums = new Float64Array(n * 5);
  const strs: string[] = [];
  const topics: string[][] = [];
  let at = 0;
  for (const c of parts) {
    nums.set(c.nums, at);
    at += c.nums.length;
    for (const s of c.strs) strs.push(s);
    for (const t of c.topics) topics.push(t);
  }
  return { n, nums, strs, topics };
}

/** Whether a flat ref list holds `revision`. */
export function hasRevision(refs: readonly number[], revision: number): boolean {
  for (let i = 0; i < refs.length; i += 4) if (refs[i] === revision) return true;
  return false;
}

/** A new flat ref list with one more ref, kept ascending by revision (entries may arrive out of revision order on re-index). */
function insertRef(refs: readonly number[], rev: number, p: number, o: number, t: number): number[] {
  let at = refs.length;
  while (at > 0 && (refs[at - 4] as number) > rev) at -= 4;
  return [...refs.slice(0, at), rev, p, o, t, ...refs.slice(at)];
}
