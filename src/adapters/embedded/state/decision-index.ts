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
import type { CommitInfo } from './index-store.ts';
import type { IndexWriterClient } from './index-writer-client.ts';
import {
  DICT_FIELDS,
  TOPICS_FIELD,
  TOPIC_SEP,
  toColumns,
  type EntryColumns,
  type StateDbs,
} from './layout.ts';
import {
  AT,
  ROW,
  RowReader,
  SEGMENT_ROWS,
  SUMMARY_FIELDS,
  SUPERSEDED,
  ZONE_STRIDE,
  ZoneMap,
  lowerBound,
} from './rows.ts';

/** Entries a query examines (rows passing its equality filters) before it returns a partial page, unless the caller says otherwise. */
export const DEFAULT_SCAN_LIMIT = 10_000;

/** Rows read per entry examined, at most: bounds a query whose equality filters match almost nothing. */
const RAW_PER_EXAMINED = 20;

/** Patterns whose matching topic-set codes are cached. */
const TOPIC_CACHE = 256;

const TOP = Number.MAX_SAFE_INTEGER;

/** A row that passed a query's equality filters. */
interface Hit {
  readonly t: number;
  readonly p: number;
  readonly o: number;
  readonly buf: Buffer;
  readonly at: number;
  readonly matched: boolean;
}

/** DecisionIndex over the id index (id-index.ts), the dictionaries, zones and row files. */
export class LmdbDecisionIndex implements DecisionIndex {
  private readonly values: string[][] = DICT_FIELDS.map(() => []);
  private readonly codes: Map<string, number>[] = DICT_FIELDS.map(() => new Map());
  private readonly topicLists: (string[] | undefined)[] = [];
  private readonly topicCache = new Map<string, { bits: Uint8Array; upTo: number }>();
  private readonly zones = new ZoneMap();
  private rows = 0;
  private readonly reader: RowReader;
  private readonly ids: IdIndex;

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
    const flat = this.ids.lookup(decisionId);
    if (flat === undefined || flat.length === 0) return undefined;
    let i = flat.length - 4;
    if (revision !== undefined) while (i >= 0 && flat[i] !== revision) i -= 4;
    if (i < 0) return undefined;
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
    if (opts.limit <= 0) return { entries: [] };
    const scanLimit = Math.max(1, opts.scanLimit ?? DEFAULT_SCAN_LIMIT);
    // Equality filters as (u32 index in the row, code); a value never indexed matches nothing.
    const want: number[] = [];
    const summary: number[] = [];
    for (let f = 0; f < TOPICS_FIELD; f++) {
      const value = q[DICT_FIELDS[f] as Exclude<(typeof DICT_FIELDS)[number], 'topics'>];
      if (value === undefined) continue;
      const code = (this.codes[f] as Map<string, number>).get(value);
      if (code === undefined) return { entries: [] };
      want.push((AT.codes >> 2) + f, code);
      if (f < SUMMARY_FIELDS) summary.push(f, code);
    }
    const topicBits = q.topic === undefined ? undefined : this.topicCodes(q.topic);
    if (topicBits !== undefined && !topicBits.includes(1)) return { entries: [] };
    const minP = q.minPriority ?? -1;
    const maxP = q.maxPriority ?? 256;
    const latestOnly = q.latestOnly !== false;
    const desc = opts.order === 'desc';
    const dir = desc ? -1 : 1;
    const lo = q.fromTime ?? -Infinity;
    const hi = q.toTime ?? Infinity;
    const a = opts.after;
    const cands = desc
      ? this.descSegments(lo, hi, a === undefined ? hi : Math.min(hi, a.receivedAt), summary)
      : this.ascSegments(Math.max(lo, a === undefined ? lo : a.receivedAt), hi, summary);

    const hits: Hit[] = [];
    const read: Buffer[] = [];
    let rawRead = 0;
    let exhausted = false;
    let bound = desc ? Infinity : -Infinity;
    const isFinal = (t: number): boolean => (desc ? t > bound : t < bound);
    const inRange = (buf: Buffer, at: number, t: number): boolean => {
      if (t < lo || t >= hi) return false;
      if (a === undefined) return true;
      const c =
        t - a.receivedAt ||
        buf.readUInt32LE(at + AT.partition) - a.partition ||
        buf.readDoubleLE(at + AT.offset) - a.offset;
      return dir * c > 0;
    };
    const lastSeen = (): Hit | undefined => {
      let best: Hit | undefined;
      for (const buf of read) {
        for (let at = 0; at < buf.length; at += ROW) {
          const t = buf.readDoubleLE(at + AT.receivedAt);
          if (!isFinal(t) || !inRange(buf, at, t)) continue;
          const h = hitAt(buf, at, false);
          if (best === undefined || dir * compareHits(h, best) > 0) best = h;
        }
      }
      return best;
    };

    for (let seg = cands.next(); ;) {
      if (seg.done === true) {
        exhausted = true;
        break;
      }
      const s = seg.value;
      const first = s * SEGMENT_ROWS;
      const buf = this.reader.rows(first, Math.min(SEGMENT_ROWS, this.rows - first));
      read.push(buf);
      rawRead += buf.length / ROW;
      const f64 = new Float64Array(buf.buffer, buf.byteOffset, buf.length >> 3);
      const u32 = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
      for (let at = 0; at < buf.length; at += ROW) {
        const r8 = at >> 3;
        const r4 = at >> 2;
        const t = f64[r8] as number;
        if (t < lo || t >= hi) continue;
        if (a !== undefined) {
          const c =
            t - a.receivedAt || (u32[r4 + 6] as number) - a.partition || (f64[r8 + 1] as number) - a.offset;
          if (dir * c <= 0) continue;
        }
        let ok = true;
        for (let w = 0; w < want.length && ok; w += 2) ok = u32[r4 + (want[w] as number)] === want[w + 1];
        if (!ok) continue;
        const pr = buf[at + AT.priority] as number;
        const matched =
          pr >= minP &&
          pr <= maxP &&
          (topicBits === undefined || topicBits[u32[r4 + 8 + TOPICS_FIELD] as number] === 1) &&
          (!latestOnly || ((buf[at + AT.flags] as number) & SUPERSEDED) === 0);
        hits.push(hitAt(buf, at, matched));
      }
      seg = cands.next();
      if (seg.done === true) continue;
      // Rows of unread segments are at or beyond the next segment's zone edge: rows before it are final.
      bound = desc ? (this.zones.max[seg.value] as number) : (this.zones.min[seg.value] as number);
      let examined = 0;
      let matched = 0;
      for (const h of hits) {
        if (!isFinal(h.t)) continue;
        examined++;
        if (h.matched) matched++;
      }
      if (matched > opts.limit || examined >= scanLimit) break;
      if (rawRead >= scanLimit * RAW_PER_EXAMINED && lastSeen() !== undefined) break;
    }
    if (exhausted) bound = desc ? -Infinity : Infinity;

    const finals = hits.filter((h) => isFinal(h.t)).sort((x, y) => dir * compareHits(x, y));
    const entries: DecisionIndexEntry[] = [];
    for (let i = 0; i < finals.length; i++) {
      if (i === scanLimit) return { entries, next: markOf(finals[i - 1] as Hit) };
      const h = finals[i] as Hit;
      if (!h.matched) continue;
      entries.push(this.decode(h.buf, h.at));
      if (entries.length === opts.limit) {
        const more = !exhausted || finals.slice(i + 1).some((m) => m.matched);
        return more ? { entries, next: markOf(h) } : { entries };
      }
    }
    if (exhausted) return { entries };
    const last = lastSeen();
    return last === undefined ? { entries } : { entries, next: markOf(last) };
  }

  /** Segments that can hold rows with receivedAt in [from, hi), ascending by their min receivedAt. */
  private *ascSegments(from: number, hi: number, summary: number[]): Generator<number, void, undefined> {
    const z = this.zones;
    const order = z.byMin();
    for (let k = lowerBound(order, z.min, from - z.span); k < order.length; k++) {
      const s = order[k] as number;
      if ((z.min[s] as number) >= hi) return;
      if ((z.max[s] as number) >= from && this.mayHold(s, summary)) yield s;
    }
  }

  /** Segments that can hold rows with receivedAt in [lo, hi) and <= upTo, descending by their max receivedAt. */
  private *descSegments(
    lo: number,
    hi: number,
    upTo: number,
    summary: number[],
  ): Generator<number, void, undefined> {
    const z = this.zones;
    const order = z.byMax();
    for (let k = lowerBound(order, z.max, upTo + z.span + 1) - 1; k >= 0; k--) {
      const s = order[k] as number;
      if ((z.max[s] as number) < lo) return;
      if ((z.min[s] as number) <= upTo && (z.min[s] as number) < hi && this.mayHold(s, summary)) yield s;
    }
  }

  /** Whether segment `s` may hold rows with every (field, code) of `summary` (its bit sets say so). */
  private mayHold(s: number, summary: number[]): boolean {
    for (let i = 0; i < summary.length; i += 2)
      if (!this.zones.mayHold(s, summary[i] as number, summary[i + 1] as number)) return false;
    return true;
  }

  /** Per topic-set code, 1 if one of its topics matches `pattern` (cached, extended as codes are added). */
  private topicCodes(pattern: string): Uint8Array {
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
  private decode(buf: Buffer, at: number): DecisionIndexEntry {
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

function hitAt(buf: Buffer, at: number, matched: boolean): Hit {
  return {
    t: buf.readDoubleLE(at + AT.receivedAt),
    p: buf.readUInt32LE(at + AT.partition),
    o: buf.readDoubleLE(at + AT.offset),
    buf,
    at,
    matched,
  };
}

function compareHits(x: Hit, y: Hit): number {
  return x.t - y.t || x.p - y.p || x.o - y.o;
}

function markOf(h: Hit): QueryMark {
  return { receivedAt: h.t, partition: h.p, offset: h.o };
}
