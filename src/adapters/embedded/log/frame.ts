/**
 * The on-disk frame of the segment log. One append() call is one frame, so a batch is stored or cut
 * as a whole. Layout (all integers little-endian):
 *
 *   frame  = u32 frameLength (whole frame, header included)
 *            u32 crc32 (zlib.crc32 over bytes [0,4) then [8,frameLength): everything but itself)
 *            u32 magic 'CDL1'
 *            u32 recordCount
 *            u32 baseOffset low 32 bits, u32 baseOffset high bits
 *            record * recordCount
 *   record = f64 timestamp, u32 keyLength, u32 headersLength, u32 payloadLength,
 *            key (UTF-8), headers, payload
 *   headers = nothing when there are none (length 0), else
 *            u8 1, u8 0, u16 count, (u16 nameLength, u16 valueLength) * count in UTF-16 code units,
 *            then all names and values concatenated as one UTF-8 string: decoding is one string
 *            conversion and slices, about 3x cheaper than JSON.parse, which dominated replay;
 *            or u8 2 followed by the headers as UTF-8 JSON, for strings with lone surrogates
 *            (which UTF-8 cannot carry, while JSON escapes them).
 */
import { crc32 } from 'node:zlib';
import { CdsError } from '../../../errors/index.ts';
import type { AppendRecord, LogRecord } from '../../../log/port.ts';

/** Bytes of the frame header. */
export const FRAME_HEADER_BYTES = 24;
/** Bytes of a record header. */
export const RECORD_HEADER_BYTES = 20;
/** 'CDL1': tells a frame from zeros or garbage before the CRC is even computed. */
export const FRAME_MAGIC = 0x314c4443;
/** Largest frame accepted, so that a corrupt length never makes the scanner allocate gigabytes. */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;
/** Limit of the headers of one record (the port's contract). */
export const MAX_HEADER_BYTES = 64 * 1024;

/** A frame encoded at append time; its base offset and CRC are filled in at commit (sealFrame). */
export interface EncodedFrame {
  readonly buf: Buffer;
  readonly count: number;
  /** Pairs (start within the frame, length) of each record, for the offset index. */
  readonly recordSpans: Uint32Array;
}

const EMPTY = new Uint8Array(0);

function invalid(message: string): CdsError {
  return new CdsError('VALIDATION_FAILED', message, {
    details: { errors: [{ path: '', code: 'invalid_record', message }] },
  });
}

interface EncodedHeaders {
  /** 1: packed, 2: JSON. */
  readonly format: 1 | 2;
  readonly text: string;
  /** UTF-16 lengths of names and values (packed format). */
  readonly lengths: number[];
  /** Bytes of the whole headers section. */
  readonly bytes: number;
}

const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

function encodeHeaders(h: Readonly<Record<string, string>>, i: number): EncodedHeaders | undefined {
  let text = '';
  const lengths: number[] = [];
  let packed = true;
  for (const k in h) {
    const v = h[k];
    if (typeof v !== 'string') throw invalid(`record ${i}: header '${k}' must be a string`);
    if (packed && (!wellFormed(k) || !wellFormed(v))) packed = false;
    text += k + v;
    lengths.push(k.length, v.length);
  }
  if (lengths.length === 0) return undefined;
  let enc: EncodedHeaders;
  if (packed) {
    enc = { format: 1, text, lengths, bytes: 4 + lengths.length * 2 + Buffer.byteLength(text, 'utf8') };
  } else {
    const json = JSON.stringify(h);
    enc = { format: 2, text: json, lengths: [], bytes: 1 + Buffer.byteLength(json, 'utf8') };
  }
  if (enc.bytes > MAX_HEADER_BYTES) throw invalid(`record ${i}: headers exceed ${MAX_HEADER_BYTES} bytes`);
  return enc;
}

function writeHeaders(buf: Buffer, p: number, h: EncodedHeaders): number {
  buf[p] = h.format;
  if (h.format === 2) return 1 + buf.write(h.text, p + 1, 'utf8');
  buf[p + 1] = 0;
  buf.writeUInt16LE(h.lengths.length / 2, p + 2);
  let q = p + 4;
  for (const l of h.lengths) {
    buf.writeUInt16LE(l, q);
    q += 2;
  }
  q += buf.write(h.text, q, 'utf8');
  return q - p;
}

/**
 * UTF-8 text of `buf[start, end)`: Buffer's own utf8Slice (on Buffer.prototype in Node 20 and 24),
 * which toString('utf8', ...) calls after checking its arguments and looking the encoding up.
 */
const utf8 = (buf: Buffer, start: number, end: number): string =>
  (buf as unknown as { utf8Slice(start: number, end: number): string }).utf8Slice(start, end);

function decodeHeaders(buf: Buffer, p: number, hl: number, offset: number): Record<string, string> {
  const format = buf[p];
  if (format === 2) return JSON.parse(buf.toString('utf8', p + 1, p + hl)) as Record<string, string>;
  // Lengths are read byte by byte: readUInt16LE's argument checks cost more than the decode itself.
  const count = buf[p + 2]! | (buf[p + 3]! << 8);
  const textStart = p + 4 + count * 4;
  if (format !== 1 || textStart > p + hl)
    throw new CdsError('DATA_CORRUPT', `log record ${offset}: bad headers`);
  const text = utf8(buf, textStart, p + hl);
  const out: Record<string, string> = {};
  let c = 0;
  for (let i = 0, q = p + 4; i < count; i++, q += 4) {
    const kl = buf[q]! | (buf[q + 1]! << 8);
    const vl = buf[q + 2]! | (buf[q + 3]! << 8);
    const k = text.slice(c, c + kl);
    const v = text.slice(c + kl, c + kl + vl);
    c += kl + vl;
    // Plain assignment to '__proto__' would set the prototype instead of storing the header.
    if (k === '__proto__')
      Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    else out[k] = v;
  }
  if (c !== text.length) throw new CdsError('DATA_CORRUPT', `log record ${offset}: bad headers`);
  return out;
}

/** Encodes a batch as one frame (offsets and CRC left blank); throws VALIDATION_FAILED on bad input. */
export function encodeFrame(records: readonly AppendRecord[]): EncodedFrame {
  const n = records.length;
  const hdrs: (EncodedHeaders | undefined)[] = new Array(n);
  const sizes = new Uint32Array(n * 3);
  let total = FRAME_HEADER_BYTES;
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    if (typeof r.key !== 'string') throw invalid(`record ${i}: key must be a string`);
    if (typeof r.timestamp !== 'number' || !Number.isFinite(r.timestamp))
      throw invalid(`record ${i}: timestamp must be a finite number`);
    if (!(r.payload instanceof Uint8Array)) throw invalid(`record ${i}: payload must be a Uint8Array`);
    if (typeof r.headers !== 'object' || r.headers === null)
      throw invalid(`record ${i}: headers must be an object`);
    const eh = encodeHeaders(r.headers, i);
    hdrs[i] = eh;
    const hl = eh === undefined ? 0 : eh.bytes;
    const kl = Buffer.byteLength(r.key, 'utf8');
    sizes[i * 3] = kl;
    sizes[i * 3 + 1] = hl;
    sizes[i * 3 + 2] = r.payload.byteLength;
    total += RECORD_HEADER_BYTES + kl + hl + r.payload.byteLength;
    if (total > MAX_FRAME_BYTES) throw invalid(`batch exceeds ${MAX_FRAME_BYTES} bytes`);
  }
  const buf = Buffer.allocUnsafe(total);
  buf.writeUInt32LE(total, 0);
  buf.writeUInt32LE(0, 4);
  buf.writeUInt32LE(FRAME_MAGIC, 8);
  buf.writeUInt32LE(n, 12);
  buf.writeUInt32LE(0, 16);
  buf.writeUInt32LE(0, 20);
  const spans = new Uint32Array(n * 2);
  let p = FRAME_HEADER_BYTES;
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    const kl = sizes[i * 3]!;
    const hl = sizes[i * 3 + 1]!;
    const pl = sizes[i * 3 + 2]!;
    spans[i * 2] = p;
    spans[i * 2 + 1] = RECORD_HEADER_BYTES + kl + hl + pl;
    buf.writeDoubleLE(r.timestamp, p);
    buf.writeUInt32LE(kl, p + 8);
    buf.writeUInt32LE(hl, p + 12);
    buf.writeUInt32LE(pl, p + 16);
    p += RECORD_HEADER_BYTES;
    if (kl > 0) p += buf.write(r.key, p, kl, 'utf8');
    if (hl > 0) p += writeHeaders(buf, p, hdrs[i]!);
    buf.set(r.payload, p);
    p += pl;
  }
  return { buf, count: n, recordSpans: spans };
}

/** The CRC of a frame as stored in its header. */
export function frameCrc(frame: Uint8Array): number {
  return crc32(frame.subarray(8), crc32(frame.subarray(0, 4)));
}

/** Fills in the base offset and the CRC of an encoded frame, once its place in the log is known. */
export function sealFrame(frame: Buffer, baseOffset: number): void {
  frame.writeUInt32LE(baseOffset % 0x100000000, 16);
  frame.writeUInt32LE(Math.floor(baseOffset / 0x100000000), 20);
  frame.writeUInt32LE(frameCrc(frame), 4);
}

/** Decodes one record that starts at `pos` of `buf` and spans `len` bytes; throws DATA_CORRUPT if it does not fit. */
export function decodeRecord(
  buf: Buffer,
  pos: number,
  len: number,
  partition: number,
  offset: number,
): LogRecord {
  const timestamp = buf.readDoubleLE(pos);
  const kl = buf.readUInt32LE(pos + 8);
  const hl = buf.readUInt32LE(pos + 12);
  const pl = buf.readUInt32LE(pos + 16);
  if (RECORD_HEADER_BYTES + kl + hl + pl !== len) {
    throw new CdsError('DATA_CORRUPT', `log record at offset ${offset} does not match its index entry`);
  }
  let p = pos + RECORD_HEADER_BYTES;
  const key = kl === 0 ? '' : utf8(buf, p, p + kl);
  p += kl;
  const headers = hl === 0 ? {} : decodeHeaders(buf, p, hl, offset);
  p += hl;
  // A view, not a copy: sequential replay stays cheap; the chunk it shares is at most READ_CHUNK_BYTES.
  const payload = pl === 0 ? EMPTY : new Uint8Array(buf.buffer, buf.byteOffset + p, pl);
  return { partition, offset, key, timestamp, headers, payload };
}

/** Result of checking the frame at the start of `buf`. */
export type FrameCheck =
  | { readonly ok: true; readonly length: number; readonly count: number; readonly spans: Uint32Array }
  | { readonly ok: false; readonly reason: string; readonly needBytes?: number };

/**
 * Checks the frame that starts at `buf[0]` and must carry `expectedBase`: length, magic, CRC, base
 * offset, and that its records fill it exactly. When `buf` is too short but the declared length is
 * plausible, says how many bytes it needs (the caller reads more, or sees a torn tail at EOF).
 */
export function checkFrame(buf: Buffer, expectedBase: number): FrameCheck {
  if (buf.length < FRAME_HEADER_BYTES)
    return { ok: false, reason: 'short header', needBytes: FRAME_HEADER_BYTES };
  const length = buf.readUInt32LE(0);
  if (length < FRAME_HEADER_BYTES || length > MAX_FRAME_BYTES)
    return { ok: false, reason: `bad length ${length}` };
  if (buf.readUInt32LE(8) !== FRAME_MAGIC) return { ok: false, reason: 'bad magic' };
  if (buf.length < length) return { ok: false, reason: 'short frame', needBytes: length };
  const frame = buf.subarray(0, length);
  if (frame.readUInt32LE(4) !== frameCrc(frame)) return { ok: false, reason: 'crc mismatch' };
  const count = frame.readUInt32LE(12);
  const base = frame.readUInt32LE(16) + frame.readUInt32LE(20) * 0x100000000;
  if (base !== expectedBase) return { ok: false, reason: `base offset ${base}, expected ${expectedBase}` };
  const spans = new Uint32Array(count * 2);
  let p = FRAME_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (p + RECORD_HEADER_BYTES > length) return { ok: false, reason: 'records overrun frame' };
    const len =
      RECORD_HEADER_BYTES +
      frame.readUInt32LE(p + 8) +
      frame.readUInt32LE(p + 12) +
      frame.readUInt32LE(p + 16);
    spans[i * 2] = p;
    spans[i * 2 + 1] = len;
    p += len;
  }
  if (p !== length) return { ok: false, reason: 'records do not fill frame' };
  return { ok: true, length, count, spans };
}
