/**
 * The embedded EventLog (DESIGN 6, ADR 0002): an append-only segment log in one directory, one
 * partition, one writer process. Files:
 *
 *   meta.json                  format version and epoch (written atomically)
 *   LOCK                       pid of the process that has the log open
 *   <base:20 digits>.seg       frames (see frame.ts); the name is the offset of its first record
 *   <base:20 digits>.idx       dense offset index: u32 position + u32 length per record, not fsync'd
 *                              while the segment is active (rebuilt from the segment when short)
 *
 * Appends are group-committed: while one write + fdatasync is in flight, new appends queue and go
 * out together in the next one; when idle, an append is written at once.
 */
import { open, readdir, readFile, rm, stat, mkdir, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CdsError, isCdsError } from '../../../errors/index.ts';
import type { AppendRecord, Appended, EventLog, LogRecord, PartitionExtent } from '../../../log/port.ts';
import { checkFrame, decodeRecord, encodeFrame, sealFrame, type EncodedFrame } from './frame.ts';
import { acquireLock, fsyncDir, newEpochId, readMeta, writeMeta } from './files.ts';

/** Options of SegmentLog.open. */
export interface SegmentLogOptions {
  /** Size at which the active segment rolls (default 256 MiB, at most 1 GiB). */
  readonly segmentBytes?: number;
  /**
   * Give the log a new epoch when opening it. `cds restore` sets it after copying files in, so that
   * positions handed out by the log before the restore are refused (EPOCH_MISMATCH).
   */
  readonly newEpoch?: boolean;
  /**
   * How many of the last committed records reads are served from memory (default 16,384; 0: every
   * read goes to the files). Their payload bytes are bounded too (16 MiB).
   */
  readonly recentRecords?: number;
}

/** A point-in-time description of the log's files (SegmentLog.snapshot). */
export interface LogSnapshot {
  readonly dir: string;
  readonly epoch: string;
  /** Offset of the first record held. */
  readonly first: number;
  /** Offset the next record will get: everything before it is acknowledged. */
  readonly next: number;
  readonly segments: readonly {
    readonly base: number;
    /** File names in `dir`. */
    readonly file: string;
    readonly index: string;
    /** Committed bytes of the segment file. */
    readonly bytes: number;
    readonly records: number;
    /** False for the active (last) segment, whose file grows and whose index is not durable. */
    readonly sealed: boolean;
  }[];
}

/** Default size at which a segment rolls (the configuration's `log.segmentBytes` default). */
export const DEFAULT_SEGMENT_BYTES = 256 * 1024 * 1024;
/** One group commit writes at most this much (one larger batch alone may exceed it). */
const GROUP_BYTES = 8 * 1024 * 1024;
/** Reads fetch at most this much per syscall (one larger record alone may exceed it). */
const READ_CHUNK_BYTES = 1024 * 1024;
/** Sealed-segment indexes kept in memory. */
const INDEX_CACHE = 8;
/** Read handles of sealed segments kept open. */
const HANDLE_CACHE = 16;
/** Records last committed that reads are served from memory (a second or two of live traffic)... */
const RECENT_RECORDS = 16_384;
/** ...within this many payload bytes. */
const RECENT_BYTES = 16 * 1024 * 1024;
const EMPTY = new Uint8Array(0);

interface Segment {
  readonly base: number;
  /** Bytes (committed bytes for the active segment). */
  size: number;
  /** Records (committed records for the active segment). */
  count: number;
}

interface PendingAppend {
  readonly frame: EncodedFrame;
  readonly records: readonly AppendRecord[];
  readonly resolve: (v: Appended[]) => void;
  readonly reject: (e: unknown) => void;
}

interface Waiter {
  readonly offset: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
  readonly cleanup: () => void;
}

const segName = (base: number) => String(base).padStart(20, '0');
const SEG_RE = /^(\d{20})\.seg$/;

function storageError(op: string, cause: unknown): CdsError {
  if (isCdsError(cause)) return cause;
  return new CdsError(
    'STORAGE_UNAVAILABLE',
    `log ${op} failed: ${(cause as Error)?.message ?? String(cause)}`,
    {
      cause,
    },
  );
}

/** Reads exactly `length` bytes at `position` (fewer only at end of file). */
async function readAt(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** Growable (position, length) pairs: the in-memory index of the active segment. */
class SpanList {
  data = new Uint32Array(2048);
  count = 0;
  push(pos: number, len: number): void {
    if (this.count * 2 + 2 > this.data.length) {
      const d = new Uint32Array(this.data.length * 2);
      d.set(this.data);
      this.data = d;
    }
    this.data[this.count * 2] = pos;
    this.data[this.count * 2 + 1] = len;
    this.count++;
  }
}

/** Result of scanning a segment file frame by frame. */
interface ScanResult {
  readonly spans: SpanList;
  /** Bytes of whole valid frames from the start. */
  readonly validBytes: number;
  /** Why the scan stopped before the end of the file, if it did. */
  readonly badReason: string | undefined;
}

async function scanSegment(fh: FileHandle, size: number, base: number): Promise<ScanResult> {
  const spans = new SpanList();
  let pos = 0;
  let next = base;
  let buf: Buffer = Buffer.alloc(0);
  let bufStart = 0;
  while (pos < size) {
    let rel = pos - bufStart;
    let check = checkFrame(buf.subarray(rel), next);
    if (!check.ok && check.needBytes !== undefined && pos + check.needBytes <= size) {
      buf = await readAt(fh, Math.min(size - pos, Math.max(check.needBytes, 4 * READ_CHUNK_BYTES)), pos);
      bufStart = pos;
      rel = 0;
      check = checkFrame(buf, next);
    }
    if (!check.ok) {
      const reason = check.needBytes !== undefined ? `truncated frame (${check.reason})` : check.reason;
      return { spans, validBytes: pos, badReason: `${reason} at byte ${pos}` };
    }
    for (let i = 0; i < check.count; i++) spans.push(pos + check.spans[i * 2]!, check.spans[i * 2 + 1]!);
    pos += check.length;
    next += check.count;
  }
  return { spans, validBytes: pos, badReason: undefined };
}

function encodeIndex(spans: Uint32Array, from: number, to: number): Buffer {
  const b = Buffer.allocUnsafe((to - from) * 8);
  for (let i = from; i < to; i++) {
    b.writeUInt32LE(spans[i * 2]!, (i - from) * 8);
    b.writeUInt32LE(spans[i * 2 + 1]!, (i - from) * 8 + 4);
  }
  return b;
}

/** The embedded EventLog: a durable, group-committed segment log in one directory. */
export class SegmentLog implements EventLog {
  readonly partitions = 1;
  private readonly segments: Segment[];
  private active: Segment;
  private activeIdx: SpanList;
  private next: number;
  private bytes: number;
  private pending: PendingAppend[] = [];
  private flushing = false;
  private drained: (() => void)[] = [];
  private waiters: Waiter[] = [];
  private closing = false;
  private closed: Promise<void> | undefined;
  /** Set when a failed write could not be undone: the log refuses appends until reopened. */
  private broken: CdsError | undefined;
  private readonly indexCache = new Map<number, Uint32Array>();
  private readonly handles = new Map<number, FileHandle>();
  private retired: FileHandle[] = [];
  private readsInFlight = 0;
  /**
   * The last records committed, [recentFirst, next), as they were appended (with their memo): the
   * tail readers of live subscriptions read them from here, without a read from the file or a decode.
   */
  private recent: LogRecord[] = [];
  private recentFirst = 0;
  private recentBytes = 0;
  private recentMax = RECENT_RECORDS;

  private constructor(
    private readonly dir: string,
    readonly epoch: string,
    private readonly segmentBytes: number,
    private readonly releaseLock: () => Promise<void>,
    segments: Segment[],
    private fh: FileHandle,
    private idxFh: FileHandle,
    activeIdx: SpanList,
  ) {
    this.segments = segments;
    this.active = segments[segments.length - 1]!;
    this.activeIdx = activeIdx;
    this.next = this.active.base + this.active.count;
    this.recentFirst = this.next;
    this.bytes = segments.reduce((s, g) => s + g.size, 0);
  }

  /**
   * Opens (creating if needed) the log in `dir`: takes the lock, reads the epoch, cuts a torn or
   * corrupt tail of the last segment. Throws DATA_DIR_LOCKED if another process holds it.
   */
  static async open(dir: string, opts: SegmentLogOptions = {}): Promise<SegmentLog> {
    const segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isInteger(segmentBytes) || segmentBytes < 1024 || segmentBytes > 1024 * 1024 * 1024) {
      throw new CdsError('CONFIG_INVALID', `log.segmentBytes must be an integer in [1 KiB, 1 GiB]`);
    }
    const created = await mkdir(dir, { recursive: true });
    if (created !== undefined) await fsyncDir(dirname(created));
    const release = await acquireLock(dir);
    try {
      return await SegmentLog.load(dir, segmentBytes, opts, release);
    } catch (e) {
      await release();
      throw e;
    }
  }

  private static async load(
    dir: string,
    segmentBytes: number,
    opts: SegmentLogOptions,
    release: () => Promise<void>,
  ): Promise<SegmentLog> {
    const names = await readdir(dir);
    for (const n of names) if (n.endsWith('.tmp')) await rm(join(dir, n), { force: true });
    const bases = names
      .map((n) => SEG_RE.exec(n)?.[1])
      .filter((b): b is string => b !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    let meta = await readMeta(dir);
    if (meta === undefined) {
      if (bases.length > 0) throw new CdsError('DATA_CORRUPT', `${dir} has log segments but no meta.json`);
      meta = await writeMeta(dir, newEpochId());
    } else if (opts.newEpoch === true) {
      meta = await writeMeta(dir, newEpochId());
    }
    if (bases.length === 0) {
      await writeFile(join(dir, `${segName(0)}.seg`), '', { flag: 'wx' });
      await writeFile(join(dir, `${segName(0)}.idx`), '', { flag: 'wx' });
      await fsyncDir(dir);
      bases.push(0);
    }
    const segments: Segment[] = [];
    for (let i = 0; i < bases.length - 1; i++) {
      const base = bases[i]!;
      const size = (await stat(join(dir, `${segName(base)}.seg`))).size;
      segments.push({ base, size, count: bases[i + 1]! - base });
    }
    // The last segment is the only one a crash can have torn: validate it frame by frame.
    const base = bases[bases.length - 1]!;
    const fh = await open(join(dir, `${segName(base)}.seg`), 'r+');
    let idxFh: FileHandle | undefined;
    try {
      const size = (await fh.stat()).size;
      const scan = await scanSegment(fh, size, base);
      if (scan.validBytes < size) {
        // A batch whose write or fsync did not complete was never acknowledged: cut it.
        await fh.truncate(scan.validBytes);
        await fh.sync();
      }
      const prev = segments[segments.length - 1];
      if (prev !== undefined && prev.base + prev.count !== base) {
        throw new CdsError('DATA_CORRUPT', `segment ${segName(base)} does not follow its predecessor`);
      }
      idxFh = await open(join(dir, `${segName(base)}.idx`), 'w+');
      const idx = encodeIndex(scan.spans.data, 0, scan.spans.count);
      if (idx.length > 0) await idxFh.write(idx, 0, idx.length, 0);
      segments.push({ base, size: scan.validBytes, count: scan.spans.count });
      const log = new SegmentLog(dir, meta.epoch, segmentBytes, release, segments, fh, idxFh, scan.spans);
      log.recentMax = opts.recentRecords ?? RECENT_RECORDS;
      return log;
    } catch (e) {
      await fh.close();
      await idxFh?.close();
      throw e;
    }
  }

  /** Always 0: embedded mode has one partition. */
  partitionOf(_key: string): number {
    return 0;
  }

  /** Appends a batch as one frame; resolves after it is written and fdatasync'd (group commit). */
  append(records: readonly AppendRecord[]): Promise<Appended[]> {
    if (this.closing) return Promise.reject(new CdsError('SHUTTING_DOWN', 'the log is closing'));
    if (this.broken !== undefined) return Promise.reject(this.broken);
    if (records.length === 0) return Promise.resolve([]);
    let frame: EncodedFrame;
    try {
      frame = encodeFrame(records);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<Appended[]>((resolve, reject) => {
      this.pending.push({ frame, records, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        // A microtask, not a timer: appends issued in the same tick share the first write.
        queueMicrotask(() => void this.flushLoop());
      }
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      let bytes = 0;
      let n = 0;
      while (
        n < this.pending.length &&
        (n === 0 || bytes + this.pending[n]!.frame.buf.length <= GROUP_BYTES)
      ) {
        bytes += this.pending[n]!.frame.buf.length;
        n++;
      }
      const group = this.pending.splice(0, n);
      await this.commit(group, bytes);
    }
    this.flushing = false;
    const d = this.drained;
    this.drained = [];
    for (const f of d) f();
  }

  private async commit(group: PendingAppend[], bytes: number): Promise<void> {
    if (this.broken !== undefined) {
      for (const p of group) p.reject(this.broken);
      return;
    }
    try {
      if (this.active.size >= this.segmentBytes && this.active.count > 0) await this.roll();
    } catch (e) {
      this.broken = storageError('segment roll', e);
      for (const p of group) p.reject(this.broken);
      return;
    }
    const seg = this.active;
    const writePos = seg.size;
    const base = this.next;
    const results: Appended[][] = [];
    const idxStart = this.activeIdx.count;
    const newSpans = new Uint32Array(group.reduce((s, p) => s + p.frame.count, 0) * 2);
    let off = base;
    let pos = writePos;
    let k = 0;
    for (const p of group) {
      sealFrame(p.frame.buf, off);
      const r: Appended[] = new Array(p.frame.count);
      for (let i = 0; i < p.frame.count; i++) {
        r[i] = { partition: 0, offset: off + i };
        newSpans[k * 2] = pos + p.frame.recordSpans[i * 2]!;
        newSpans[k * 2 + 1] = p.frame.recordSpans[i * 2 + 1]!;
        k++;
      }
      results.push(r);
      off += p.frame.count;
      pos += p.frame.buf.length;
    }
    try {
      const { bytesWritten } = await this.fh.writev(
        group.map((p) => p.frame.buf),
        writePos,
      );
      if (bytesWritten !== bytes) throw new Error(`short write (${bytesWritten} of ${bytes} bytes)`);
      const idx = encodeIndex(newSpans, 0, k);
      // The index write needs no fsync (rebuilt on open), so it overlaps the data fsync.
      const idxWrite = this.idxFh.write(idx, 0, idx.length, idxStart * 8).catch(() => undefined);
      await this.fh.datasync();
      await idxWrite;
    } catch (e) {
      const err = storageError('append', e);
      try {
        // Leave no half frame behind: the next append starts at a clean file position.
        await this.fh.truncate(writePos);
        await this.fh.datasync();
      } catch (e2) {
        this.broken = storageError('append (undo)', e2);
      }
      for (const p of group) p.reject(err);
      return;
    }
    for (let i = 0; i < k; i++) this.activeIdx.push(newSpans[i * 2]!, newSpans[i * 2 + 1]!);
    seg.size = pos;
    seg.count += k;
    this.bytes += bytes;
    this.remember(group, base);
    this.next = off;
    for (let i = 0; i < group.length; i++) group[i]!.resolve(results[i]!);
    this.wake();
  }

  /** Keeps a committed group in `recent`, bounded by `recentRecords` and RECENT_BYTES. */
  private remember(group: readonly PendingAppend[], base: number): void {
    if (this.recentMax === 0) {
      this.recentFirst = base + group.reduce((n, p) => n + p.records.length, 0);
      return;
    }
    if (this.recentFirst + this.recent.length !== base) {
      this.recent = [];
      this.recentFirst = base;
      this.recentBytes = 0;
    }
    let offset = base;
    for (const p of group) {
      const { buf, recordSpans } = p.frame;
      for (let i = 0; i < p.records.length; i++) {
        const r = p.records[i]!;
        const n = r.payload.byteLength;
        // The payload as a view of the sealed frame (as a read from the file would give), not the
        // writer's own buffer: what a reader gets cannot change under it.
        const end = buf.byteOffset + recordSpans[i * 2]! + recordSpans[i * 2 + 1]!;
        const rec: LogRecord = {
          partition: 0,
          offset: offset++,
          key: r.key,
          timestamp: r.timestamp,
          headers: r.headers,
          payload: n === 0 ? EMPTY : new Uint8Array(buf.buffer, end - n, n),
          ...(r.memo === undefined ? {} : { memo: r.memo }),
        };
        this.recent.push(rec);
        this.recentBytes += n;
      }
    }
    if (this.recent.length > this.recentMax * 1.25 || this.recentBytes > RECENT_BYTES * 1.25) {
      // Dropped in bulk, not one by one: an array shift per record would copy the rest every time.
      let drop = Math.max(0, this.recent.length - this.recentMax);
      let bytes = 0;
      for (let i = 0; i < drop; i++) bytes += this.recent[i]!.payload.byteLength;
      while (this.recentBytes - bytes > RECENT_BYTES && drop < this.recent.length)
        bytes += this.recent[drop++]!.payload.byteLength;
      this.recent = this.recent.slice(drop);
      this.recentFirst += drop;
      this.recentBytes -= bytes;
    }
  }

  private async roll(): Promise<void> {
    const old = this.active;
    // The sealed segment's index must survive a crash: it is no longer rebuilt on open.
    await this.idxFh.datasync();
    const base = old.base + old.count;
    const fh = await open(join(this.dir, `${segName(base)}.seg`), 'wx+');
    let idxFh: FileHandle;
    try {
      idxFh = await open(join(this.dir, `${segName(base)}.idx`), 'w+');
      await fsyncDir(this.dir);
    } catch (e) {
      await fh.close();
      await rm(join(this.dir, `${segName(base)}.seg`), { force: true });
      throw e;
    }
    const oldFh = this.fh;
    const oldIdxFh = this.idxFh;
    this.cacheIndex(old.base, this.activeIdx.data.subarray(0, old.count * 2));
    this.fh = fh;
    this.idxFh = idxFh;
    this.active = { base, size: 0, count: 0 };
    this.activeIdx = new SpanList();
    this.segments.push(this.active);
    this.retired.push(oldFh);
    await oldIdxFh.close();
    if (this.readsInFlight === 0) await this.closeRetired();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.offset < this.next) {
        w.cleanup();
        w.resolve();
      } else keep.push(w);
    }
    this.waiters = keep;
  }

  private checkPartition(partition: number): void {
    if (partition !== 0)
      throw new CdsError('INVALID_POSITION', `partition ${partition} does not exist (1 partition)`);
  }

  private segmentIndexOf(offset: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid]!.base <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private cacheIndex(base: number, idx: Uint32Array): void {
    this.indexCache.delete(base);
    this.indexCache.set(base, idx);
    if (this.indexCache.size > INDEX_CACHE) this.indexCache.delete(this.indexCache.keys().next().value!);
  }

  private async handleOf(seg: Segment): Promise<FileHandle> {
    if (seg === this.active) return this.fh;
    let h = this.handles.get(seg.base);
    if (h === undefined) {
      h = await open(join(this.dir, `${segName(seg.base)}.seg`), 'r');
      const raced = this.handles.get(seg.base);
      if (raced !== undefined) {
        await h.close();
        return raced;
      }
      this.handles.set(seg.base, h);
      if (this.handles.size > HANDLE_CACHE) {
        const [b, old] = this.handles.entries().next().value!;
        this.handles.delete(b);
        this.retired.push(old);
      }
    }
    return h;
  }

  /** The index of a sealed segment: from cache, from its .idx file, or rebuilt from the segment. */
  private async indexOf(seg: Segment): Promise<Uint32Array> {
    if (seg === this.active) return this.activeIdx.data;
    const cached = this.indexCache.get(seg.base);
    if (cached !== undefined) return cached;
    const path = join(this.dir, `${segName(seg.base)}.idx`);
    let raw: Buffer | undefined;
    try {
      raw = await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    let idx: Uint32Array;
    if (raw !== undefined && raw.length === seg.count * 8) {
      idx = new Uint32Array(seg.count * 2);
      for (let i = 0; i < seg.count * 2; i++) idx[i] = raw.readUInt32LE(i * 4);
      const lastEnd = seg.count === 0 ? 0 : idx[seg.count * 2 - 2]! + idx[seg.count * 2 - 1]!;
      if (lastEnd !== seg.size) raw = undefined; // inconsistent: rebuild below
    } else raw = undefined;
    if (raw === undefined) {
      const fh = await this.handleOf(seg);
      const scan = await scanSegment(fh, seg.size, seg.base);
      if (scan.badReason !== undefined || scan.spans.count !== seg.count) {
        throw new CdsError(
          'DATA_CORRUPT',
          `log segment ${segName(seg.base)} is corrupt: ${scan.badReason ?? `holds ${scan.spans.count} records, expected ${seg.count}`}`,
        );
      }
      idx = scan.spans.data.subarray(0, seg.count * 2);
      await writeFile(path, encodeIndex(idx, 0, seg.count));
    }
    this.cacheIndex(seg.base, idx!);
    return idx!;
  }

  /**
   * Checks every committed frame of every segment (length, CRC, offsets); throws DATA_CORRUPT naming
   * the first bad one. Reads by index do not check CRCs, so `cds verify` and restore call this.
   */
  async verify(): Promise<void> {
    this.readsInFlight++;
    try {
      for (const seg of [...this.segments]) {
        const scan = await scanSegment(await this.handleOf(seg), seg.size, seg.base);
        if (scan.badReason !== undefined || scan.spans.count < seg.count) {
          throw new CdsError(
            'DATA_CORRUPT',
            `log segment ${segName(seg.base)} is corrupt: ${scan.badReason ?? `holds ${scan.spans.count} records, expected ${seg.count}`}`,
          );
        }
      }
    } finally {
      this.readsInFlight--;
    }
  }

  /** Reads up to `maxRecords` committed records from `fromOffset`, in chunks of up to 1 MiB per syscall. */
  async read(partition: number, fromOffset: number, maxRecords: number): Promise<LogRecord[]> {
    this.checkPartition(partition);
    if (this.closed !== undefined) throw new CdsError('SHUTTING_DOWN', 'the log is closed');
    const out: LogRecord[] = [];
    const end = this.next;
    let off = Math.max(fromOffset, this.first);
    if (off >= this.recentFirst && off < this.recentFirst + this.recent.length) {
      const i = off - this.recentFirst;
      return this.recent.slice(i, i + Math.min(maxRecords, end - off));
    }
    this.readsInFlight++;
    try {
      while (out.length < maxRecords && off < end) {
        if (off < this.first) break; // trimmed under us: what we have is still dense
        const seg = this.segments[this.segmentIndexOf(off)]!;
        const idx = await this.indexOf(seg);
        const fh = await this.handleOf(seg);
        const segEnd = Math.min(end, seg.base + seg.count);
        const i0 = off - seg.base;
        const want = Math.min(maxRecords - out.length, segEnd - off);
        const start = idx[i0 * 2]!;
        let n = 1;
        let stop = start + idx[i0 * 2 + 1]!;
        while (n < want) {
          const e = idx[(i0 + n) * 2]! + idx[(i0 + n) * 2 + 1]!;
          if (e - start > READ_CHUNK_BYTES) break;
          stop = e;
          n++;
        }
        const buf = await readAt(fh, stop - start, start);
        if (buf.length < stop - start)
          throw new CdsError('DATA_CORRUPT', `log segment ${segName(seg.base)} is short`);
        for (let i = 0; i < n; i++) {
          const j = (i0 + i) * 2;
          out.push(decodeRecord(buf, idx[j]! - start, idx[j + 1]!, 0, off + i));
        }
        off += n;
      }
    } catch (e) {
      throw storageError('read', e);
    } finally {
      this.readsInFlight--;
      if (this.readsInFlight === 0 && this.retired.length > 0) void this.closeRetired();
    }
    return out;
  }

  /** The record at `offset`, or undefined when trimmed or not yet committed. */
  async readOne(partition: number, offset: number): Promise<LogRecord | undefined> {
    this.checkPartition(partition);
    if (offset < this.first || offset >= this.next) return undefined;
    const [r] = await this.read(partition, offset, 1);
    return r !== undefined && r.offset === offset ? r : undefined;
  }

  /** Resolves when a record at `offset` or beyond is committed; woken by the commit, never polled. */
  waitFor(partition: number, offset: number, signal?: AbortSignal): Promise<void> {
    if (partition !== 0)
      return Promise.reject(new CdsError('INVALID_POSITION', `partition ${partition} does not exist`));
    if (offset < this.next) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.closing) return Promise.reject(new CdsError('SHUTTING_DOWN', 'the log is closing'));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        offset,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Deletes whole segments that end at or before `beforeOffset` (never the active one); returns the new first offset. */
  async trim(partition: number, beforeOffset: number): Promise<number> {
    this.checkPartition(partition);
    if (this.closing) throw new CdsError('SHUTTING_DOWN', 'the log is closing');
    const removed: Segment[] = [];
    while (this.segments.length > 1 && this.segments[1]!.base <= beforeOffset) {
      const seg = this.segments.shift()!;
      removed.push(seg);
      this.bytes -= seg.size;
      this.indexCache.delete(seg.base);
      const h = this.handles.get(seg.base);
      if (h !== undefined) {
        this.handles.delete(seg.base);
        this.retired.push(h);
      }
    }
    if (removed.length > 0) {
      try {
        for (const seg of removed) {
          // Index first: a crash in between leaves a segment whose index is rebuilt, never the reverse.
          await rm(join(this.dir, `${segName(seg.base)}.idx`), { force: true });
          await rm(join(this.dir, `${segName(seg.base)}.seg`), { force: true });
        }
        await fsyncDir(this.dir);
      } catch (e) {
        throw storageError('trim', e);
      }
      if (this.readsInFlight === 0) await this.closeRetired();
    }
    return this.first;
  }

  /** The base of the segment holding `beforeOffset` (the first offset trim would leave), never past the active one. */
  trimPoint(partition: number, beforeOffset: number): number {
    this.checkPartition(partition);
    let i = 0;
    while (i + 1 < this.segments.length && this.segments[i + 1]!.base <= beforeOffset) i++;
    return this.segments[i]!.base;
  }

  private get first(): number {
    return this.segments[0]!.base;
  }

  /**
   * What a backup copies (ADR 0014), captured at one instant: the acknowledged extent and, per
   * segment, its files and committed bytes. Segments are append-only, so a copy of each file's first
   * `bytes` holds exactly the records before `next`; the last segment's index is rebuilt on open.
   */
  snapshot(): LogSnapshot {
    const last = this.segments.length - 1;
    return {
      dir: this.dir,
      epoch: this.epoch,
      first: this.first,
      next: this.next,
      segments: this.segments.map((s, i) => ({
        base: s.base,
        file: `${segName(s.base)}.seg`,
        index: `${segName(s.base)}.idx`,
        bytes: s.size,
        records: s.count,
        sealed: i < last,
      })),
    };
  }

  /** The one partition's first and next offsets. */
  extents(): PartitionExtent[] {
    return [{ partition: 0, first: this.first, next: this.next }];
  }

  /** Bytes of all segment files (frames), kept as a running total. */
  storedBytes(): number {
    return this.bytes;
  }

  private async closeRetired(): Promise<void> {
    const r = this.retired;
    this.retired = [];
    await Promise.all(r.map((h) => h.close().catch(() => undefined)));
  }

  /** Refuses new appends, completes the pending ones, closes files and releases the lock. Idempotent. */
  close(): Promise<void> {
    this.closed ??= this.doClose();
    return this.closed;
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    if (this.flushing) await new Promise<void>((r) => this.drained.push(r));
    const err = new CdsError('SHUTTING_DOWN', 'the log is closing');
    for (const w of this.waiters) {
      w.cleanup();
      w.reject(err);
    }
    this.waiters = [];
    for (const h of this.handles.values()) this.retired.push(h);
    this.handles.clear();
    this.retired.push(this.fh, this.idxFh);
    await this.closeRetired();
    await this.releaseLock();
  }
}
