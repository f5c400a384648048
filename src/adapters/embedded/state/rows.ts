/**
 * The decision index's query columns: an append-only file of fixed-width rows (one per indexed entry,
 * in indexing order) and a file of the decisionId strings they point to, plus the zone map (min and
 * max receivedAt per segment of SEGMENT_ROWS rows) that lets a query read only the segments that can
 * hold its time range, in time order. Rows are written by the index-writer worker and read with one
 * pread per segment on the main thread.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';

/** Bytes of one row. */
export const ROW = 64;

/** Rows per zone-map segment (and per read: 32 KiB). */
export const SEGMENT_ROWS = 512;

// The writer fills rows through typed-array views, i.e. in the platform's byte order.
if (endianness() !== 'LE') throw new Error('the decision row files assume a little-endian platform');

/** Row layout (little-endian). */
export const AT = {
  receivedAt: 0, // f64
  offset: 8, // f64
  idPos: 16, // f64: byte position of the decisionId in the ids file
  partition: 24, // u32
  revision: 28, // u32
  codes: 32, // u32 x 7: dictionary codes of DICT_FIELDS, in their order
  priority: 60, // u8
  flags: 61, // u8
  idLen: 62, // u8: UTF-8 bytes (decisionIds have at most 128 ASCII characters)
} as const;

/** Fields (DICT_FIELDS codes) whose values each segment summarises in a bit set: portfolio, strategy, symbol. */
export const SUMMARY_FIELDS = 3;

/** 32-bit words of one field's bit set in a segment summary (512 bits: code mod 512). */
export const SUMMARY_WORDS = 16;

/** Numbers per segment in a stored or posted zone: min, max, then the summary words. */
export const ZONE_STRIDE = 2 + SUMMARY_FIELDS * SUMMARY_WORDS;

/** Sets the summary bit of `code` of field `f` in `words` (one segment's summary, from index `base`). */
export function summaryAdd(words: Uint32Array | number[], base: number, f: number, code: number): void {
  const bit = code & (SUMMARY_WORDS * 32 - 1);
  const i = base + f * SUMMARY_WORDS + (bit >>> 5);
  words[i] = ((words[i] as number) | (1 << (bit & 31))) >>> 0;
}

/** Flag bit: a higher revision of the same decision is indexed. */
export const SUPERSEDED = 1;

/** Paths of the row and id files in the state directory. */
export function rowFiles(dir: string): { rows: string; ids: string } {
  return { rows: join(dir, 'decision-rows.bin'), ids: join(dir, 'decision-ids.bin') };
}

/** Min/max receivedAt per segment, with the segments sorted by min and by max for query planning. */
export class ZoneMap {
  min: Float64Array<ArrayBuffer> = new Float64Array(64);
  max: Float64Array<ArrayBuffer> = new Float64Array(64);
  /** Per segment, SUMMARY_FIELDS bit sets of the codes its rows hold. */
  bits: Uint32Array<ArrayBuffer> = new Uint32Array(64 * SUMMARY_FIELDS * SUMMARY_WORDS);
  segments = 0;
  /** The widest max - min of any segment: bounds how far before a time a segment holding it can start. */
  span = 0;
  private byMinCache: Uint32Array | undefined;
  private byMaxCache: Uint32Array | undefined;

  /** Sets the zone of segment `s` from ZONE_STRIDE numbers of `zone` from `at` (growing the map). */
  set(s: number, zone: ArrayLike<number>, at = 0): void {
    const min = zone[at] as number;
    const max = zone[at + 1] as number;
    if (s >= this.min.length) {
      const grow = (a: Float64Array): Float64Array<ArrayBuffer> => {
        const b = new Float64Array(Math.max(s + 1, a.length * 2));
        b.set(a);
        return b;
      };
      this.min = grow(this.min);
      this.max = grow(this.max);
      const bits = new Uint32Array(this.min.length * SUMMARY_FIELDS * SUMMARY_WORDS);
      bits.set(this.bits);
      this.bits = bits;
    }
    const w = SUMMARY_FIELDS * SUMMARY_WORDS;
    for (let i = 0; i < w; i++) this.bits[s * w + i] = zone[at + 2 + i] as number;
    this.min[s] = min;
    this.max[s] = max;
    if (s >= this.segments) this.segments = s + 1;
    if (max - min > this.span) this.span = max - min;
    this.byMinCache = undefined;
    this.byMaxCache = undefined;
  }

  /** The zone of segment `s` as ZONE_STRIDE numbers (a new segment's is empty). */
  get(s: number): number[] {
    if (s >= this.segments) return [Infinity, -Infinity, ...new Array<number>(ZONE_STRIDE - 2).fill(0)];
    const w = SUMMARY_FIELDS * SUMMARY_WORDS;
    return [this.min[s] as number, this.max[s] as number, ...this.bits.subarray(s * w, (s + 1) * w)];
  }

  /** Whether segment `s` may hold a row with `code` in field `f` (< SUMMARY_FIELDS). */
  mayHold(s: number, f: number, code: number): boolean {
    const bit = code & (SUMMARY_WORDS * 32 - 1);
    const word = this.bits[(s * SUMMARY_FIELDS + f) * SUMMARY_WORDS + (bit >>> 5)] as number;
    return (word & (1 << (bit & 31))) !== 0;
  }

  /** Segment numbers ascending by min receivedAt (cached; nearly sorted input sorts fast). */
  byMin(): Uint32Array {
    return (this.byMinCache ??= this.sorted(this.min));
  }

  /** Segment numbers ascending by max receivedAt. */
  byMax(): Uint32Array {
    return (this.byMaxCache ??= this.sorted(this.max));
  }

  private sorted(key: Float64Array): Uint32Array {
    const order = Array.from({ length: this.segments }, (_, i) => i);
    order.sort((a, b) => (key[a] as number) - (key[b] as number) || a - b);
    return Uint32Array.from(order);
  }
}

/** First index in `order` whose key is >= t (binary search). */
export function lowerBound(order: Uint32Array, key: Float64Array, t: number): number {
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((key[order[mid] as number] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Read handles on the row and id files (main thread). */
export class RowReader {
  private readonly rowsFd: number;
  private readonly idsFd: number;

  constructor(dir: string) {
    const f = rowFiles(dir);
    // The writer created them before this thread opens them.
    this.rowsFd = openSync(f.rows, 'r');
    this.idsFd = openSync(f.ids, 'r');
  }

  /** Rows [first, first + count) as one buffer (on its own ArrayBuffer, so typed-array views align). */
  rows(first: number, count: number): Buffer {
    const buf = Buffer.from(new ArrayBuffer(count * ROW));
    const n = readSync(this.rowsFd, buf, 0, buf.length, first * ROW);
    if (n !== buf.length) throw new Error(`short read of the decision rows (${n} of ${buf.length} bytes)`);
    return buf;
  }

  /** Bytes [pos, pos + len) of the ids file. */
  idBytes(pos: number, len: number): Buffer {
    const buf = Buffer.allocUnsafe(len);
    const n = readSync(this.idsFd, buf, 0, len, pos);
    if (n !== len) throw new Error(`short read of the decision ids (${n} of ${len} bytes)`);
    return buf;
  }

  /** Bytes [pos, pos + len) of the ids file, as UTF-8. */
  ids(pos: number, len: number): string {
    const buf = Buffer.allocUnsafe(len);
    const n = readSync(this.idsFd, buf, 0, len, pos);
    if (n !== len) throw new Error(`short read of the decision ids (${n} of ${len} bytes)`);
    return buf.toString('utf8', 0, len);
  }

  close(): void {
    closeSync(this.rowsFd);
    closeSync(this.idsFd);
  }
}
