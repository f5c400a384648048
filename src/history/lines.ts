/**
 * One NDJSON line per stored decision, as historical retrieval and the latest view return it (ADR
 * 0014): the envelope of GET /v1/decisions/{id} plus `expired: true` past `expiresAt` (DESIGN 5),
 * written as bytes: the envelope is encoded per record, the stored payload is copied unchanged
 * (never decoded to a string or parsed), so a line costs one small string encode and one memcpy.
 */
import { HEADERS } from '../ingest/record.ts';
import type { LogRecord } from '../log/index.ts';

/** A growable byte buffer that lines are appended to; `take()` hands out what was written. */
export class ChunkWriter {
  #buf: Buffer;
  #len = 0;

  constructor(private readonly initial = 256 * 1024) {
    this.#buf = Buffer.allocUnsafe(initial);
  }

  /** Bytes written since the last take(). */
  get length(): number {
    return this.#len;
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  /** Appends a string as UTF-8 (through Buffer's utf8Write: write() checks its arguments first). */
  string(s: string): void {
    this.#room(s.length * 3);
    this.#len += (this.#buf as unknown as { utf8Write(s: string, at: number): number }).utf8Write(
      s,
      this.#len,
    );
  }

  /** Appends bytes. */
  bytes(b: Uint8Array): void {
    this.#room(b.byteLength);
    this.#buf.set(b, this.#len);
    this.#len += b.byteLength;
  }

  /** Appends the end of a line: `}` and a newline. */
  endLine(): void {
    this.#room(2);
    this.#buf[this.#len++] = 0x7d;
    this.#buf[this.#len++] = 0x0a;
  }

  /** The bytes written so far (a fresh buffer; the writer starts over). */
  take(): Buffer {
    const out = this.#buf.subarray(0, this.#len);
    this.#buf = Buffer.allocUnsafe(Math.max(this.initial, this.#len));
    this.#len = 0;
    return out;
  }
}

const EXPIRES = Buffer.from('"expiresAt":"');
const ATTRIBUTES = Buffer.from('"attributes":{');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const CLOSE = 0x7d;

/** End (exclusive) of the flat `attributes` object whose `{` is at `open`: strings skipped. */
function attributesEnd(b: Buffer, open: number): number {
  for (let i = open + 1; i < b.length; i++) {
    const c = b[i];
    if (c === CLOSE) return i + 1;
    if (c === QUOTE) {
      for (i++; i < b.length && b[i] !== QUOTE; i++) if (b[i] === BACKSLASH) i++;
    }
  }
  return b.length;
}

/**
 * The top-level `expiresAt` of a stored decision's JSON, as the string between its quotes, found by
 * byte search. Sound for decisions as validated (DESIGN 3): `"expiresAt":"` with unescaped quotes
 * only occurs as a key, and besides the top level only inside `attributes`, which is flat (string,
 * number and boolean values), so an occurrence within that object's span is skipped.
 */
export function expiresAtOf(payload: Buffer): string | undefined {
  let i = payload.indexOf(EXPIRES);
  if (i < 0) return undefined;
  const a = payload.indexOf(ATTRIBUTES);
  if (a >= 0 && i > a) {
    const end = attributesEnd(payload, a + ATTRIBUTES.length - 1);
    if (i < end) i = payload.indexOf(EXPIRES, end);
    if (i < 0) return undefined;
  }
  const start = i + EXPIRES.length;
  const stop = payload.indexOf(QUOTE, start);
  return stop < 0 ? undefined : payload.toString('latin1', start, stop);
}

/** What a line encoder selects and how it marks expiry. */
export interface LineOptions {
  /** The log's epoch, written on every line. */
  readonly epoch: string;
  /** ms since the epoch: decisions whose expiresAt is at or before it are marked `expired: true`. */
  readonly now: number;
  /** Whether a record with these topics (its `topics` header, space-separated) is returned. */
  readonly select: (topics: readonly string[]) => boolean;
}

interface TopicsInfo {
  readonly selected: boolean;
  readonly json: string;
}

/** Encodes stored records as NDJSON lines; caches what repeats from record to record. */
export class LineEncoder {
  readonly #epochJson: string;
  readonly #topics = new Map<string, TopicsInfo>();
  #lastTs = Number.NaN;
  #lastIso = '';
  #lastExp = '';
  #lastExpMs = Number.NaN;

  constructor(private readonly opts: LineOptions) {
    this.#epochJson = JSON.stringify(opts.epoch);
  }

  /** The selection and JSON of a `topics` header (cached per distinct header). */
  topicsOf(r: LogRecord): TopicsInfo {
    const h = r.headers[HEADERS.topics] ?? '';
    let info = this.#topics.get(h);
    if (info === undefined) {
      const list = h === '' ? [] : h.split(' ');
      info = { selected: this.selects(list), json: JSON.stringify(list) };
      if (this.#topics.size >= 10_000) this.#topics.clear();
      this.#topics.set(h, info);
    }
    return info;
  }

  /** Whether a record with these topics is selected. */
  selects(topics: readonly string[]): boolean {
    return topics.length > 0 && this.opts.select(topics);
  }

  /**
   * Whether the decision of `r` is past its expiresAt at `now`. Records that carry the decision's
   * `type` in a header carry its `expiresAt` in one too when it has one (ingest/record.ts); older
   * records are searched.
   */
  expired(r: LogRecord, payload: Buffer): boolean {
    const h = r.headers;
    const exp = h[HEADERS.type] !== undefined ? h[HEADERS.expiresAt] : expiresAtOf(payload);
    if (exp === undefined) return false;
    if (exp !== this.#lastExp) {
      this.#lastExp = exp;
      this.#lastExpMs = Date.parse(exp);
    }
    return this.#lastExpMs <= this.opts.now;
  }

  /** Appends the line of `r` to `out` when its topics are selected; returns whether it did. */
  encode(r: LogRecord, out: ChunkWriter): boolean {
    const t = this.topicsOf(r);
    if (!t.selected) return false;
    this.write(r, t, out);
    return true;
  }

  /** Appends the line of a record already selected (its topics info from topicsOf). */
  write(r: LogRecord, t: TopicsInfo, out: ChunkWriter): void {
    const p = r.payload;
    const payload = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    if (r.timestamp !== this.#lastTs) {
      this.#lastTs = r.timestamp;
      this.#lastIso = new Date(r.timestamp).toISOString();
    }
    const h = r.headers;
    const revision = Number(h[HEADERS.revision]);
    const priority = Number(h[HEADERS.priority]);
    out.string(
      `{"decisionId":${JSON.stringify(h[HEADERS.decisionId] ?? '')},"revision":${Number.isInteger(revision) ? revision : 0}` +
        `,"position":"${r.partition}:${r.offset}","epoch":${this.#epochJson},"key":${JSON.stringify(r.key)}` +
        `,"topics":${t.json},"priority":${Number.isInteger(priority) ? priority : 0},"receivedAt":"${this.#lastIso}"` +
        `${this.expired(r, payload) ? ',"expired":true' : ''},"decision":`,
    );
    out.bytes(payload);
    out.endLine();
  }
}
