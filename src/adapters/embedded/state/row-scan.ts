/**
 * One page of a decision query over the row file (see ADR 0003): the segments whose zone can hold the
 * query's range are read in time order (by min receivedAt ascending, by max descending), and after
 * each segment the rows before the next segment's zone edge are final; the final rows that pass the
 * equality filters are sorted into (receivedAt, partition, offset) order and the other filters are
 * tested on them.
 */
import type { DecisionIndexEntry, DecisionQuery, QueryMark, QueryPage } from '../../../state/port.ts';
import { DICT_FIELDS, TOPICS_FIELD } from './layout.ts';
import {
  AT,
  ROW,
  SEGMENT_ROWS,
  SUMMARY_FIELDS,
  SUPERSEDED,
  lowerBound,
  type RowReader,
  type ZoneMap,
} from './rows.ts';

/** What a scan reads: the main thread's caches and row reader. */
export interface ScanSource {
  readonly codes: readonly ReadonlyMap<string, number>[];
  readonly zones: ZoneMap;
  /** Committed rows. */
  readonly rows: number;
  readonly reader: RowReader;
  /** Per topic-set code, 1 if one of its topics matches `pattern`. */
  topicCodes(pattern: string): Uint8Array;
  /** The entry of the row at byte `at` of `buf`. */
  decode(buf: Buffer, at: number): DecisionIndexEntry;
}

/** Entries a query examines (rows passing its equality filters) before it returns a partial page, unless the caller says otherwise. */
export const DEFAULT_SCAN_LIMIT = 10_000;

/** Rows read per entry examined, at most: bounds a query whose equality filters match almost nothing. */
const RAW_PER_EXAMINED = 20;

/** A row that passed a query's equality filters. */
interface Hit {
  readonly t: number;
  readonly p: number;
  readonly o: number;
  readonly buf: Buffer;
  readonly at: number;
  readonly matched: boolean;
}

/** One page of `q` (the DecisionIndex.query contract). */
export function scanPage(
  src: ScanSource,
  q: DecisionQuery,
  opts: { after?: QueryMark; limit: number; order: 'asc' | 'desc'; scanLimit?: number },
): QueryPage {
  if (opts.limit <= 0) return { entries: [] };
  const scanLimit = Math.max(1, opts.scanLimit ?? DEFAULT_SCAN_LIMIT);
  // Equality filters as (u32 index in the row, code); a value never indexed matches nothing.
  const want: number[] = [];
  const summary: number[] = [];
  for (let f = 0; f < TOPICS_FIELD; f++) {
    const value = q[DICT_FIELDS[f] as Exclude<(typeof DICT_FIELDS)[number], 'topics'>];
    if (value === undefined) continue;
    const code = (src.codes[f] as Map<string, number>).get(value);
    if (code === undefined) return { entries: [] };
    want.push((AT.codes >> 2) + f, code);
    if (f < SUMMARY_FIELDS) summary.push(f, code);
  }
  const topicBits = q.topic === undefined ? undefined : src.topicCodes(q.topic);
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
    ? descSegments(src.zones, lo, hi, a === undefined ? hi : Math.min(hi, a.receivedAt), summary)
    : ascSegments(src.zones, Math.max(lo, a === undefined ? lo : a.receivedAt), hi, summary);

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
    const buf = src.reader.rows(first, Math.min(SEGMENT_ROWS, src.rows - first));
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
    bound = desc ? (src.zones.max[seg.value] as number) : (src.zones.min[seg.value] as number);
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
    entries.push(src.decode(h.buf, h.at));
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
function* ascSegments(
  z: ZoneMap,
  from: number,
  hi: number,
  summary: number[],
): Generator<number, void, undefined> {
  const order = z.byMin();
  for (let k = lowerBound(order, z.min, from - z.span); k < order.length; k++) {
    const s = order[k] as number;
    if ((z.min[s] as number) >= hi) return;
    if ((z.max[s] as number) >= from && mayHold(z, s, summary)) yield s;
  }
}

/** Segments that can hold rows with receivedAt in [lo, hi) and <= upTo, descending by their max receivedAt. */
function* descSegments(
  z: ZoneMap,
  lo: number,
  hi: number,
  upTo: number,
  summary: number[],
): Generator<number, void, undefined> {
  const order = z.byMax();
  for (let k = lowerBound(order, z.max, upTo + z.span + 1) - 1; k >= 0; k--) {
    const s = order[k] as number;
    if ((z.max[s] as number) < lo) return;
    if ((z.min[s] as number) <= upTo && (z.min[s] as number) < hi && mayHold(z, s, summary)) yield s;
  }
}

/** Whether segment `s` may hold rows with every (field, code) of `summary` (its bit sets say so). */
function mayHold(z: ZoneMap, s: number, summary: number[]): boolean {
  for (let i = 0; i < summary.length; i += 2)
    if (!z.mayHold(s, summary[i] as number, summary[i + 1] as number)) return false;
  return true;
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
