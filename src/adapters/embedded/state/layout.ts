/**
 * The on-disk layout of the embedded state store, shared by the main thread (reads, small writes)
 * and the index-writer worker (decision index writes), so both open and encode the same way.
 *
 * One LMDB environment, named sub-databases:
 * - `principals`: id -> Principal; `principalKeys`: keyHash -> id.
 * - `audit`: seq -> AuditRecord.
 * - `meta`: key -> string.
 * - `decisionDict`: [field code, value code] -> value: the dictionary of each string query field.
 * - `decisionZones`: segment number -> [min receivedAt, max receivedAt] of its rows.
 * - `decisionStats`: ['cp', partition] -> next offset; ['n', 'revisions' | 'decisions'] -> count;
 *   ['rows'] and ['idsBytes'] -> committed lengths of the row and id files; ['runs'], ['runSeq'],
 *   ['flushedRows'] -> the live decisionId runs, the next run number, the rows the runs cover;
 *   ['layout'] -> version.
 *
 * Beside it, append-only files: `decision-rows.bin` (one fixed-width row per indexed entry, in
 * indexing order) and `decision-ids.bin` (the decisionId strings the rows point to), see rows.ts;
 * `decision-idrun-<n>.bin`, the sorted runs of the decisionId index, see id-index.ts.
 */
import { open, type Database, type Key, type RootDatabase } from 'lmdb';
import type { DecisionIndexEntry } from '../../../state/port.ts';

/** Version of the decision index layout; another stored version is dropped and re-indexed from the log. */
export const INDEX_LAYOUT = 3;

/** Dictionary-encoded fields, by their stable code (stored in rows and keys: never renumber). */
export const DICT_FIELDS = [
  'portfolioId',
  'strategyId',
  'symbol',
  'assetClass',
  'type',
  'verdict',
  'topics',
] as const;

/** Code of the topic-set pseudo-field (the entry's topics joined by TOPIC_SEP). */
export const TOPICS_FIELD = 6;

/** Separator of topics in a topic-set value (no topic contains a space). */
export const TOPIC_SEP = ' ';

/** The sub-databases of the store. */
export interface StateDbs {
  readonly env: RootDatabase;
  readonly principals: Database;
  readonly principalKeys: Database<string, string>;
  readonly audit: Database;
  readonly meta: Database<string, string>;
  readonly decisionDict: Database<string, [number, number]>;
  readonly decisionZones: Database<number[], number>;
  readonly decisionStats: Database<number, Key[]>;
}

/** Sub-databases of layouts 1 and 2 (emptied when found). */
export const OLD_DBS = ['decisions', 'decisionRefs', 'decisionIdx', 'decisionRevs'] as const;

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
    decisionDict: env.openDB({ name: 'decisionDict', encoding: 'string' }),
    decisionZones: env.openDB({ name: 'decisionZones' }),
    decisionStats: env.openDB({ name: 'decisionStats' }),
  };
}

/**
 * A batch of entries as columns. Structured clone copies a few typed arrays much faster than a
 * thousand small objects or thousands of strings, and the main thread pays for that copy on every
 * `add()`: so the main thread sends the dictionary code of every value its cache knows (codes are
 * never reassigned), and the string only of values new to it.
 */
export interface EntryColumns {
  readonly n: number;
  /** receivedAt, partition, offset, revision, priority of each entry, 5 per entry. */
  readonly nums: Float64Array;
  /** Dictionary code of each DICT_FIELDS value, 7 per entry; NO_CODE: the value is the next of `news`. */
  readonly codes: Uint32Array;
  /** decisionId of each entry. */
  readonly ids: string[];
  /** Values the sender had no code for, in entry then field order. */
  readonly news: string[];
}

/** In EntryColumns.codes: the value is sent as a string. */
export const NO_CODE = 0xffffffff;

/** Packs entries into columns (on the main thread, before posting them to the writer); `dict` holds the known codes per field. */
export function toColumns(
  entries: readonly DecisionIndexEntry[],
  dict: readonly ReadonlyMap<string, number>[],
): EntryColumns {
  const n = entries.length;
  const nums = new Float64Array(n * 5);
  const codes = new Uint32Array(n * DICT_FIELDS.length);
  const ids = new Array<string>(n);
  const news: string[] = [];
  const none = new Map<string, number>();
  const [pf, st, sy, ac, ty, ve, tp] = DICT_FIELDS.map((_, f) => dict[f] ?? none);
  const code = (at: number, d: ReadonlyMap<string, number> | undefined, value: string): void => {
    const c = d?.get(value);
    if (c === undefined) {
      codes[at] = NO_CODE;
      news.push(value);
    } else codes[at] = c;
  };
  for (let i = 0; i < n; i++) {
    const e = entries[i] as DecisionIndexEntry;
    const j = i * 5;
    nums[j] = e.receivedAt;
    nums[j + 1] = e.partition;
    nums[j + 2] = e.offset;
    nums[j + 3] = e.revision;
    nums[j + 4] = e.priority;
    ids[i] = e.decisionId;
    const k = i * DICT_FIELDS.length;
    code(k, pf, e.portfolioId);
    code(k + 1, st, e.strategyId);
    code(k + 2, sy, e.symbol);
    code(k + 3, ac, e.assetClass);
    code(k + 4, ty, e.type);
    code(k + 5, ve, e.verdict);
    code(k + 6, tp, e.topics.length === 1 ? (e.topics[0] as string) : e.topics.join(TOPIC_SEP));
  }
  return { n, nums, codes, ids, news };
}

/** Several batches as one, in order (for the writer's group commit). */
export function concatColumns(parts: readonly EntryColumns[]): EntryColumns {
  const n = parts.reduce((x, c) => x + c.n, 0);
  const nums = new Float64Array(n * 5);
  const codes = new Uint32Array(n * DICT_FIELDS.length);
  const ids: string[] = [];
  const news: string[] = [];
  let at = 0;
  for (const c of parts) {
    nums.set(c.nums, at * 5);
    codes.set(c.codes, at * DICT_FIELDS.length);
    at += c.n;
    for (const s of c.ids) ids.push(s);
    for (const s of c.news) news.push(s);
  }
  return { n, nums, codes, ids, news };
}

/** Whether a flat ref list ([revision, partition, offset, row] quadruples) holds `revision`. */
export function hasRevision(refs: readonly number[], revision: number): boolean {
  for (let i = 0; i < refs.length; i += 4) if (refs[i] === revision) return true;
  return false;
}

/**
 * Meta key prefix of the per-partition floors of the decision index (`decisions.floor.<partition>`
 * -> offset): entries below a floor are forgotten (retention trimmed the log there, ADR 0017). The
 * main thread writes them; the writer reads them to index a forgotten decision published again.
 */
export const FLOOR_PREFIX = 'decisions.floor.';

/** The refs of a flat ref list (revision, partition, offset, row) that lie at or above their partition's floor. */
export function liveRefs(refs: readonly number[], floor: (partition: number) => number): number[] {
  const out: number[] = [];
  for (let i = 0; i < refs.length; i += 4)
    if ((refs[i + 2] as number) >= floor(refs[i + 1] as number)) out.push(...refs.slice(i, i + 4));
  return out;
}

/** A new flat ref list with one more ref, kept ascending by revision (entries may arrive out of revision order on re-index). */
export function insertRef(refs: readonly number[], rev: number, p: number, o: number, row: number): number[] {
  let at = refs.length;
  while (at > 0 && (refs[at - 4] as number) > rev) at -= 4;
  return [...refs.slice(0, at), rev, p, o, row, ...refs.slice(at)];
}
