/**
 * The on-disk layout of the embedded state store, shared by the main thread (reads, small writes)
 * and the index-writer worker (decision index writes), so both open and encode the same way.
 *
 * One LMDB environment, named sub-databases:
 * - `principals`: id -> Principal; `principalKeys`: keyHash -> id.
 * - `audit`: seq -> AuditRecord.
 * - `meta`: key -> string.
 * - `decisionRevs`: decisionId -> flat [revision, partition, offset, row, ...] ascending by revision:
 *   one sync get answers `revisions()`, deduplicates an add and finds the row of the latest revision.
 * - `decisionDict`: [field code, value code] -> value: the dictionary of each string query field.
 * - `decisionZones`: segment number -> [min receivedAt, max receivedAt] of its rows.
 * - `decisionStats`: ['cp', partition] -> next offset; ['n', 'revisions' | 'decisions'] -> count;
 *   ['rows'] and ['idsBytes'] -> committed lengths of the row and id files; ['layout'] -> version.
 *
 * Beside it, two append-only files (see rows.ts): `decision-rows.bin` (one fixed-width row per
 * indexed entry, in indexing order) and `decision-ids.bin` (the decisionId strings the rows point to).
 */
import { open, type Database, type Key, type RootDatabase } from 'lmdb';
import type { DecisionIndexEntry } from '../../../state/port.ts';

/** Version of the decision index layout; another stored version is dropped and re-indexed from the log. */
export const INDEX_LAYOUT = 2;

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
  readonly decisionRevs: Database<number[], string>;
  readonly decisionDict: Database<string, [number, number]>;
  readonly decisionZones: Database<number[], number>;
  readonly decisionStats: Database<number, Key[]>;
}

/** Sub-databases of layout 1 (dropped when found). */
export const OLD_DBS = ['decisions', 'decisionRefs', 'decisionIdx'] as const;

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
    decisionRevs: env.openDB({ name: 'decisionRevs' }),
    decisionDict: env.openDB({ name: 'decisionDict', encoding: 'string' }),
    decisionZones: env.openDB({ name: 'decisionZones' }),
    decisionStats: env.openDB({ name: 'decisionStats' }),
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
  /** decisionId, portfolioId, strategyId, symbol, assetClass, type, verdict, topic set of each entry, 8 per entry. */
  readonly strs: string[];
}

/** Strings per entry in EntryColumns.strs: the decisionId, then the DICT_FIELDS values. */
export const STRS = 8;

/** Packs entries into columns (on the main thread, before posting them to the writer). */
export function toColumns(entries: readonly DecisionIndexEntry[]): EntryColumns {
  const n = entries.length;
  const nums = new Float64Array(n * 5);
  const strs = new Array<string>(n * STRS);
  for (let i = 0; i < n; i++) {
    const e = entries[i] as DecisionIndexEntry;
    const j = i * 5;
    nums[j] = e.receivedAt;
    nums[j + 1] = e.partition;
    nums[j + 2] = e.offset;
    nums[j + 3] = e.revision;
    nums[j + 4] = e.priority;
    const k = i * STRS;
    strs[k] = e.decisionId;
    strs[k + 1] = e.portfolioId;
    strs[k + 2] = e.strategyId;
    strs[k + 3] = e.symbol;
    strs[k + 4] = e.assetClass;
    strs[k + 5] = e.type;
    strs[k + 6] = e.verdict;
    strs[k + 7] = e.topics.length === 1 ? (e.topics[0] as string) : e.topics.join(TOPIC_SEP);
  }
  return { n, nums, strs };
}

/** Several batches as one, in order (for the writer's group commit). */
export function concatColumns(parts: readonly EntryColumns[]): EntryColumns {
  const n = parts.reduce((x, c) => x + c.n, 0);
  const nums = new Float64Array(n * 5);
  const strs: string[] = [];
  let at = 0;
  for (const c of parts) {
    nums.set(c.nums, at);
    at += c.nums.length;
    for (const s of c.strs) strs.push(s);
  }
  return { n, nums, strs };
}

/** Whether a flat ref list ([revision, partition, offset, row] quadruples) holds `revision`. */
export function hasRevision(refs: readonly number[], revision: number): boolean {
  for (let i = 0; i < refs.length; i += 4) if (refs[i] === revision) return true;
  return false;
}

/** A new flat ref list with one more ref, kept ascending by revision (entries may arrive out of revision order on re-index). */
export function insertRef(refs: readonly number[], rev: number, p: number, o: number, row: number): number[] {
  let at = refs.length;
  while (at > 0 && (refs[at - 4] as number) > rev) at -= 4;
  return [...refs.slice(0, at), rev, p, o, row, ...refs.slice(at)];
}
