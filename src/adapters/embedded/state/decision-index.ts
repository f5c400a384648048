/**
 * The embedded decision index. Writes go to the index-writer worker (the hot path: batches of
 * thousands at up to ~100K entries/s, so the main thread only packs columns). Reads run on the main
 * thread: `revisions()` and `get()` look decisionIds up in the id index (id-index.ts); `query()` resolves its filter
 * values to dictionary codes and scans the fixed-width rows (rows.ts) of the segments whose zone can
 * hold its time range, merged in time order. The main thread sees a batch as soon as the writer
 * reports its commit (with the new dictionary values and zones, which it caches).
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
import { IdIndex } from './id-index.ts';
import { scanPage } from './row-scan.ts';
import type { CommitInfo } from './index-store.ts';
import type { IndexWriterClient } from './index-writer-client.ts';
import {
  DICT_FIELDS,
  FLOOR_PREFIX as FLOOR,
  TOPICS_FIELD,
  TOPIC_SEP,
  toColumns,
  type EntryColumns,
  type StateDbs,
} from './layout.ts';
import { AT, RowReader, ZONE_STRIDE, ZoneMap } from './rows.ts';

/** Patterns whose matching topic-set codes are cached. */
const TOPIC_CACHE = 256;

const TOP = Number.MAX_SAFE_INTEGER;
/** Scans a query goes on with while its pages hold forgotten rows only. */
const TRIMMED_PAGES = 50;

/** DecisionIndex over the id index (id-index.ts), the dictionaries, zones and row files. */
export class LmdbDecisionIndex implements DecisionIndex {
  private readonly values: string[][] = DICT_FIELDS.map(() => []);
  readonly codes: Map<string, number>[] = DICT_FIELDS.map(() => new Map());
  private readonly topicLists: (string[] | undefined)[] = [];
  private readonly topicCache = new Map<string, { bits: Uint8Array; upTo: number }>();
  readonly zones = new ZoneMap();
  rows = 0;
  readonly reader: RowReader;
  private readonly ids: IdIndex;
  /** Per partition, the offset below which entries are forgotten (retention trimmed the log). */
  private readonly floors = new Map<number, number>();

  constructor(
    private readonly dbs: StateDbs,
    private readonly writer: IndexWriterClient,
    dir: string,
  ) {
    this.reader = new RowReader(dir);
    for (const { key, value } of dbs.decisionDict.getRange()) this.addValue(key[0], key[1], value);
    for (const { key, value } of dbs.decisionZones.getRange()) this.zones.set(key, value);
    this.rows = dbs.decisionStats.get(['rows']) ?? 0;
    this.ids = new IdIndex(dir, this.reader);
    const flushedRows = dbs.decisionStats.get(['flushedRows']) ?? 0;
    this.ids.setRuns((dbs.decisionStats.get(['runs']) as unknown as number[] | undefined) ?? [], flushedRows);
    this.ids.loadRows(flushedRows, this.rows);
    for (const { key, value } of dbs.meta.getRange({ start: FLOOR, end: `${FLOOR}~` }))
      this.floors.set(Number(key.slice(FLOOR.length)), Number(value));
  }

  /** Whether an entry at this position is forgotten (below its partition's floor). */
  private trimmed(partition: number, offset: number): boolean {
    const f = this.floors.get(partition);
    return f !== undefined && offset < f;
  }

  async trim(partition: number, beforeOffset: number): Promise<void> {
    if (beforeOffset <= (this.floors.get(partition) ?? 0)) return;
    await this.dbs.meta.put(`${FLOOR}${partition}`, String(beforeOffset));
    this.floors.set(partition, beforeOffset);
  }

  /**
   * Takes in what a commit of the writer changed (called before the adds it covers resolve);
   * `columns` are the batches of the group as posted, from which the id memory table learns the new
   * rows without reading them back.
   */
  applyCommit(info: CommitInfo, columns: readonly (EntryColumns | undefined)[] = []): void {
    const d = info.dict;
    for (let i = 0; i < d.length; i += 3)
      this.addValue(d[i] as number, d[i + 1] as number, d[i + 2] as string);
    for (let z = 0; z < info.zones.length; z += ZONE_STRIDE)
      this.zones.set(info.firstZone + z / ZONE_STRIDE, info.zones, z);
    this.ids.setRuns(info.runs, info.flushedRows);
    if (info.rows > this.rows) {
      if (info.firstRow === this.rows && columns.length > 0 && columns.every((c) => c !== undefined))
        this.rememberRows(info, columns as EntryColumns[]);
      else this.ids.loadRows(this.rows, info.rows);
      this.rows = info.rows;
    }
  }

  /** Adds the rows of a committed group to the id memory table from the posted batches. */
  private rememberRows(info: CommitInfo, columns: readonly EntryColumns[]): void {
    if (info.rows <= info.flushedRows) return; // all in the run flushed by this commit
    let i = 0;
    let skip = 0;
    let row = info.firstRow;
    for (const c of columns) {
      for (let e = 0; e < c.n; e++, i++) {
        if (info.skipped[skip] === i) {
          skip++;
          continue;
        }
        if (row >= info.flushedRows) {
          const j = e * 5;
          this.ids.remember(
            c.ids[e] as string,
            c.nums[j + 3] as number,
            c.nums[j + 1] as number,
            c.nums[j + 2] as number,
            row,
          );
        }
        row++;
      }
    }
  }

  /** Releases the read handles on the row files. */
  close(): void {
    this.ids.close();
    this.reader.close();
  }

  add(entries: readonly DecisionIndexEntry[], through: Readonly<Record<number, number>>): Promise<void> {
    return this.writer.write(toColumns(entries, this.codes), { ...through });
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
    for (const id of decisionIds) {
      const flat = this.ids.lookup(id);
      if (flat === undefined) continue;
      const list: RevisionRef[] = [];
      for (let i = 0; i < flat.length; i += 4) {
        if (this.trimmed(flat[i + 1] as number, flat[i + 2] as number)) continue;
        list.push({
          revision: flat[i] as number,
          partition: flat[i + 1] as number,
          offset: flat[i + 2] as number,
        });
      }
      if (list.length > 0) out.set(id, list);
    }
    return out;
  }

  async get(decisionId: string, revision?: number): Promise<DecisionIndexEntry | undefined> {
    const flat = this.ids.lookup(decisionId);
    if (flat === undefined || flat.length === 0) return undefined;
    let i = flat.length - 4;
    if (revision !== undefined) while (i >= 0 && flat[i] !== revision) i -= 4;
    if (i < 0 || this.trimmed(flat[i + 1] as number, flat[i + 2] as number)) return undefined;
    const row = flat[i + 3] as number;
    if (row >= this.rows) return undefined;
    return this.decode(this.reader.rows(row, 1), 0);
  }

  async counts(): Promise<{ revisions: number; decisions: number }> {
    const s = this.dbs.decisionStats;
    return { revisions: s.get(['n', 'revisions']) ?? 0, decisions: s.get(['n', 'decisions']) ?? 0 };
  }

  async query(
    q: DecisionQuery,
    opts: { after?: QueryMark; limit: number; order: 'asc' | 'desc'; scanLimit?: number },
  ): Promise<QueryPage> {
    let page = scanPage(this, q, opts);
    if (this.floors.size === 0) return page;
    // Forgotten rows are still in the row files (not compacted yet): leave them out of the page, and
    // go on past pages that held nothing else (a bounded number of scans, then an empty page with next).
    for (let i = 0; ; i++) {
      const entries = page.entries.filter((e) => !this.trimmed(e.partition, e.offset));
      if (entries.length > 0 || page.next === undefined || i === TRIMMED_PAGES) return { ...page, entries };
      page = scanPage(this, q, { ...opts, after: page.next });
    }
  }

  /** Per topic-set code, 1 if one of its topics matches `pattern` (cached, extended as codes are added). */
  topicCodes(pattern: string): Uint8Array {
    const sets = this.values[TOPICS_FIELD] as string[];
    let c = this.topicCache.get(pattern);
    if (c === undefined || c.upTo < sets.length) {
      const bits = new Uint8Array(sets.length);
      let from = 0;
      if (c !== undefined) {
        bits.set(c.bits);
        from = c.upTo;
      }
      for (let code = from; code < sets.length; code++)
        if (this.topicsOf(code).some((t) => topicMatches(pattern, t))) bits[code] = 1;
      c = { bits, upTo: sets.length };
      if (this.topicCache.size >= TOPIC_CACHE) this.topicCache.clear();
      this.topicCache.set(pattern, c);
    }
    return c.bits;
  }

  private topicsOf(code: number): string[] {
    let list = this.topicLists[code];
    if (list === undefined) {
      list = (this.values[TOPICS_FIELD]?.[code] ?? '').split(TOPIC_SEP);
      this.topicLists[code] = list;
    }
    return list;
  }

  private addValue(field: number, code: number, value: string): void {
    (this.values[field] as string[])[code] = value;
    (this.codes[field] as Map<string, number>).set(value, code);
  }

  /** The entry of the row at byte `at` of `buf`. */
  decode(buf: Buffer, at: number): DecisionIndexEntry {
    const v = (f: number): string =>
      (this.values[f] as string[])[buf.readUInt32LE(at + AT.codes + 4 * f)] as string;
    return {
      decisionId: this.reader.ids(buf.readDoubleLE(at + AT.idPos), buf[at + AT.idLen] as number),
      revision: buf.readUInt32LE(at + AT.revision),
      partition: buf.readUInt32LE(at + AT.partition),
      offset: buf.readDoubleLE(at + AT.offset),
      receivedAt: buf.readDoubleLE(at + AT.receivedAt),
      portfolioId: v(0),
      strategyId: v(1),
      symbol: v(2),
      assetClass: v(3),
      type: v(4),
      verdict: v(5),
      priority: buf[at + AT.priority] as number,
      topics: [...this.topicsOf(buf.readUInt32LE(at + AT.codes + 4 * TOPICS_FIELD))],
    };
  }
}
