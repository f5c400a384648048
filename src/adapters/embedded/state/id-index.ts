/**
 * decisionId -> revisions, shaped as a small LSM tree so that indexing an entry costs a hash and a
 * map insert instead of a random B-tree insert: rows not yet flushed are in an in-memory table
 * (rebuilt at open from the row and id files), flushed rows are in immutable sorted run files of
 * (64-bit id hash, row) with a Bloom filter and block fences, merged four at a time. Both threads hold
 * one: the writer to deduplicate and find the previous revision, the main thread for `revisions()`
 * and `get()`. A hash match is confirmed against the stored decisionId.
 */
import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AT, ROW, type RowReader } from './rows.ts';

/** Rows collected in memory before they are flushed as a run. */
export const FLUSH_ROWS = 131_072;

/** Entries per fenced block of a run (16 bytes each: a 4 KiB read). */
const BLOCK = 256;
const ENTRY = 16;
const HEADER = 16;
const BLOOM_BITS_PER_ENTRY = 10;
const BLOOM_PROBES = 6;
const MAGIC = 0x52444943; // 'CIDR'

let H1 = 0;
let H2 = 0;

/** Sets H1, H2 to a 64-bit hash of `s`. */
function hashId(s: string): void {
  let a = 0x811c9dc5;
  let b = 0x9747b28c ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  a ^= a >>> 16;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  b = Math.imul(b ^ (b >>> 15), 0xc2b2ae35);
  b ^= b >>> 16;
  H1 = a >>> 0;
  H2 = b >>> 0;
}

/** Path of run `seq`. */
export function runPath(dir: string, seq: number): string {
  return join(dir, `decision-idrun-${seq}.bin`);
}

/** One immutable run file, opened for look-ups. */
export class IdRun {
  private constructor(
    readonly seq: number,
    readonly count: number,
    private readonly fd: number,
    private readonly bloom: Uint32Array,
    private readonly fences: Uint32Array,
  ) {}

  /** Opens run `seq` under `dir` (its Bloom filter and fences are loaded into memory). */
  static open(dir: string, seq: number): IdRun {
    const fd = openSync(runPath(dir, seq), 'r');
    const head = new Uint32Array(4);
    readSync(fd, head, 0, HEADER, 0);
    if (head[0] !== MAGIC) throw new Error(`not a decision id run: ${runPath(dir, seq)}`);
    const count = head[1] as number;
    const bloomWords = head[2] as number;
    const bloom = new Uint32Array(bloomWords);
    readSync(fd, bloom, 0, bloomWords * 4, HEADER + count * ENTRY);
    const fences = new Uint32Array(Math.ceil(count / BLOCK) * 2);
    readSync(fd, fences, 0, fences.byteLength, HEADER + count * ENTRY + bloomWords * 4);
    return new IdRun(seq, count, fd, bloom, fences);
  }

  /** Rows stored under hash (H1, H2), appended to `out`. */
  rowsOf(out: number[]): void {
    const bits = this.bloom.length * 32;
    for (let i = 0; i < BLOOM_PROBES; i++) {
      const bit = (H1 + Math.imul(i, H2 | 1)) >>> 0;
      const b = bit % bits;
      if (((this.bloom[b >>> 5] as number) & (1 << (b & 31))) === 0) return;
    }
    // The last block whose first key is < (H1, H2), then on while keys are <= it.
    const f = this.fences;
    let lo = 0;
    let hi = f.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const a = f[mid * 2] as number;
      const b = f[mid * 2 + 1] as number;
      if (a < H1 || (a === H1 && b < H2)) lo = mid + 1;
      else hi = mid;
    }
    const buf = new ArrayBuffer(BLOCK * ENTRY);
    const u32 = new Uint32Array(buf);
    const f64 = new Float64Array(buf);
    for (let block = Math.max(0, lo - 1); block * BLOCK < this.count; block++) {
      const n = Math.min(BLOCK, this.count - block * BLOCK);
      readSync(this.fd, u32, 0, n * ENTRY, HEADER + block * BLOCK * ENTRY);
      for (let i = 0; i < n; i++) {
        const a = u32[i * 4] as number;
        const b = u32[i * 4 + 1] as number;
        if (a > H1 || (a === H1 && b > H2)) return;
        if (a === H1 && b === H2) out.push(f64[i * 2 + 1] as number);
      }
    }
  }

  /** All entries, as [h1, h2, row-low, row-high] u32 quadruples (for merging). */
  readAll(): Uint32Array {
    const all = new Uint32Array(this.count * 4);
    readSync(this.fd, all, 0, all.byteLength, HEADER);
    return all;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Writes a run of sorted entries (u32 quadruples: h1, h2, then the row as a float64) durably. */
export function writeRun(dir: string, seq: number, sorted: Uint32Array): void {
  const count = sorted.length / 4;
  const bloomWords = Math.max(1, Math.ceil((count * BLOOM_BITS_PER_ENTRY) / 32));
  const bloom = new Uint32Array(bloomWords);
  const bits = bloomWords * 32;
  const fences = new Uint32Array(Math.ceil(count / BLOCK) * 2);
  for (let e = 0; e < count; e++) {
    const h1 = sorted[e * 4] as number;
    const h2 = sorted[e * 4 + 1] as number;
    for (let i = 0; i < BLOOM_PROBES; i++) {
      const b = ((h1 + Math.imul(i, h2 | 1)) >>> 0) % bits;
      bloom[b >>> 5] = ((bloom[b >>> 5] as number) | (1 << (b & 31))) >>> 0;
    }
    if (e % BLOCK === 0) {
      fences[(e / BLOCK) * 2] = h1;
      fences[(e / BLOCK) * 2 + 1] = h2;
    }
  }
  const fd = openSync(runPath(dir, seq), 'w');
  try {
    writeSync(fd, new Uint32Array([MAGIC, count, bloomWords, 0]));
    writeSync(fd, sorted);
    writeSync(fd, bloom);
    writeSync(fd, fences);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Sorts (h1, h2, row) entries given as parallel arrays into u32 quadruples. */
export function sortEntries(h1: number[], h2: number[], rows: number[]): Uint32Array {
  const order = Array.from({ length: rows.length }, (_, i) => i);
  order.sort(
    (x, y) =>
      (h1[x] as number) - (h1[y] as number) ||
      (h2[x] as number) - (h2[y] as number) ||
      (rows[x] as number) - (rows[y] as number),
  );
  const out = new Uint32Array(rows.length * 4);
  const f64 = new Float64Array(out.buffer);
  order.forEach((from, i) => {
    out[i * 4] = h1[from] as number;
    out[i * 4 + 1] = h2[from] as number;
    f64[i * 2 + 1] = rows[from] as number;
  });
  return out;
}

/** Merges sorted runs' entries into one sorted array. */
export function mergeEntries(parts: readonly Uint32Array[]): Uint32Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint32Array(total);
  const at = parts.map(() => 0);
  const rowOf = parts.map((p) => new Float64Array(p.buffer, p.byteOffset, p.length / 2));
  for (let o = 0; o < total; o += 4) {
    let best = -1;
    for (let k = 0; k < parts.length; k++) {
      const p = parts[k] as Uint32Array;
      const i = at[k] as number;
      if (i >= p.length) continue;
      if (best < 0) {
        best = k;
        continue;
      }
      const q = parts[best] as Uint32Array;
      const j = at[best] as number;
      const c =
        (p[i] as number) - (q[j] as number) ||
        (p[i + 1] as number) - (q[j + 1] as number) ||
        ((rowOf[k] as Float64Array)[i / 2 + 1] as number) -
          ((rowOf[best] as Float64Array)[j / 2 + 1] as number);
      if (c < 0) best = k;
    }
    const p = parts[best] as Uint32Array;
    const i = at[best] as number;
    out.set(p.subarray(i, i + 4), o);
    at[best] = i + 4;
  }
  return out;
}

/** The id index of one thread: memory table plus runs. */
export class IdIndex {
  /** decisionId -> flat [revision, partition, offset, row] of rows not yet in a run. */
  private mem = new Map<string, number[]>();
  runs: IdRun[] = [];
  flushedRows = 0;

  constructor(
    private readonly dir: string,
    private readonly reader: RowReader,
  ) {}

  /** Sets the runs to `seqs` (opening new ones, closing dropped ones) and drops memory rows below `flushedRows`. */
  setRuns(seqs: readonly number[], flushedRows: number): void {
    const keep = new Map(this.runs.map((r) => [r.seq, r]));
    const next: IdRun[] = [];
    for (const s of seqs) {
      next.push(keep.get(s) ?? IdRun.open(this.dir, s));
      keep.delete(s);
    }
    for (const r of keep.values()) r.close();
    this.runs = next;
    if (flushedRows > this.flushedRows) {
      this.flushedRows = flushedRows;
      for (const [id, refs] of this.mem) {
        const kept: number[] = [];
        for (let i = 0; i < refs.length; i += 4)
          if ((refs[i + 3] as number) >= flushedRows) kept.push(...refs.slice(i, i + 4));
        if (kept.length === 0) this.mem.delete(id);
        else this.mem.set(id, kept);
      }
    }
  }

  /** Adds rows [from, to) of the row file to the memory table (at open, and on the main thread after a commit). */
  loadRows(from: number, to: number): void {
    for (let first = Math.max(from, this.flushedRows); first < to; first += 4096) {
      const n = Math.min(4096, to - first);
      const buf = this.reader.rows(first, n);
      const f64 = new Float64Array(buf.buffer, buf.byteOffset, buf.length >> 3);
      const u32 = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
      const idStart = f64[2] as number;
      const last = (n - 1) * ROW;
      const idEnd = (f64[(last >> 3) + 2] as number) + (buf[last + AT.idLen] as number);
      const ids = this.reader.idBytes(idStart, idEnd - idStart);
      for (let at = 0; at < buf.length; at += ROW) {
        const pos = (f64[(at >> 3) + 2] as number) - idStart;
        const id = ids.toString('utf8', pos, pos + (buf[at + AT.idLen] as number));
        this.remember(
          id,
          u32[(at >> 2) + 7] as number,
          u32[(at >> 2) + 6] as number,
          f64[(at >> 3) + 1] as number,
          first + at / ROW,
        );
      }
    }
  }

  /** Records a new row of `id` in the memory table. */
  remember(id: string, rev: number, partition: number, offset: number, row: number): void {
    const refs = this.mem.get(id);
    if (refs === undefined) this.mem.set(id, [rev, partition, offset, row]);
    else refs.push(rev, partition, offset, row);
  }

  /** Flat [revision, partition, offset, row] of every indexed revision of `id`, ascending by revision; undefined if none. */
  lookup(id: string): number[] | undefined {
    const mem = this.mem.get(id);
    let out: number[] | undefined;
    if (this.runs.length > 0) {
      hashId(id);
      const rows: number[] = [];
      for (const r of this.runs) r.rowsOf(rows);
      for (const row of rows) {
        const buf = this.reader.rows(row, 1);
        const len = buf[AT.idLen] as number;
        if (this.reader.ids(buf.readDoubleLE(AT.idPos), len) !== id) continue; // a hash collision
        (out ??= []).push(
          buf.readUInt32LE(AT.revision),
          buf.readUInt32LE(AT.partition),
          buf.readDoubleLE(AT.offset),
          row,
        );
      }
    }
    if (mem !== undefined) (out ??= []).push(...mem);
    if (out === undefined || out.length === 4) return out;
    const quads: number[][] = [];
    for (let i = 0; i < out.length; i += 4) quads.push(out.slice(i, i + 4));
    quads.sort((a, b) => (a[0] as number) - (b[0] as number));
    return quads.flat();
  }

  /** Rows in memory not yet flushed, as sorted run entries. */
  memEntries(): Uint32Array {
    const h1: number[] = [];
    const h2: number[] = [];
    const rows: number[] = [];
    for (const [id, refs] of this.mem) {
      hashId(id);
      for (let i = 3; i < refs.length; i += 4) {
        h1.push(H1);
        h2.push(H2);
        rows.push(refs[i] as number);
      }
    }
    return sortEntries(h1, h2, rows);
  }

  close(): void {
    for (const r of this.runs) r.close();
    this.runs = [];
  }
}
