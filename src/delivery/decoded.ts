/**
 * A log record decoded once for every subscription that takes it (DESIGN 9): the payload text is kept
 * as is and spliced unchanged into every delivery frame; only the small header is per subscriber.
 */
import { formatPosition } from '../domain/position.ts';
import { HEADERS, recordTopics } from '../ingest/record.ts';
import type { LogRecord } from '../log/index.ts';

/** What readers share of one record. */
export interface DecodedRecord {
  readonly partition: number;
  readonly offset: number;
  readonly position: string;
  readonly key: string;
  /** `JSON.stringify(key)`, computed once. */
  readonly keyJson: string;
  readonly topics: readonly string[];
  /** `JSON.stringify(topics)`, computed once. */
  readonly topicsJson: string;
  readonly priority: number;
  readonly decisionId: string;
  readonly revision: number;
  readonly type: string;
  /** Milliseconds since the epoch, or undefined when the decision does not expire. */
  readonly expiresAt: number | undefined;
  /** Milliseconds since the epoch before which it is not delivered (a routing rule's hold or delay, ADR 0013). */
  readonly holdUntil: number | undefined;
  /** The payload exactly as stored (the decision's JSON). */
  readonly payloadText: string;
  /** The parsed decision (shared, never mutated; parsed on first read). */
  readonly decision: Record<string, unknown>;
}

/** A parsed payload, or undefined when it is not a JSON object (never expected: ingest wrote it). */
function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** A memo's value when it is a decision object (it always is when ingest wrote the record). */
const objectOf = (v: unknown): Record<string, unknown> | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

const timeOf = (v: unknown) => (typeof v === 'string' ? Date.parse(v) : Number.NaN);

/**
 * A decoded record whose body is parsed only when something reads `decision` (a filter, a transform,
 * explain): what delivery needs of every record (type, expiry, id, revision, priority) comes from
 * the record's headers, since JSON.parse of the body was most of the cost of reading (ADR 0012).
 */
class Decoded implements DecodedRecord {
  readonly position: string;
  readonly keyJson: string;
  readonly topicsJson: string;
  readonly priority: number;
  readonly expiresAt: number | undefined;
  readonly holdUntil: number | undefined;
  #decision: Record<string, unknown> | undefined;

  constructor(
    readonly partition: number,
    readonly offset: number,
    readonly key: string,
    readonly topics: readonly string[],
    readonly decisionId: string,
    readonly revision: number,
    readonly type: string,
    expiresAt: unknown,
    holdUntil: unknown,
    priority: unknown,
    readonly payloadText: string,
    decision: Record<string, unknown> | undefined,
  ) {
    this.position = formatPosition(partition, offset);
    this.keyJson = JSON.stringify(key);
    this.topicsJson = JSON.stringify(topics);
    const p = Number(priority ?? 0);
    this.priority = Number.isInteger(p) && p >= 0 && p <= 9 ? p : 0;
    const exp = timeOf(expiresAt);
    this.expiresAt = Number.isNaN(exp) ? undefined : exp;
    const hold = timeOf(holdUntil);
    this.holdUntil = Number.isNaN(hold) ? undefined : hold;
    this.#decision = decision;
  }

  get decision(): Record<string, unknown> {
    return (this.#decision ??= parseObject(this.payloadText) ?? {});
  }
}

/** Decodes one record; returns undefined for a payload that is not a JSON object (never expected). */
export function decodeRecord(r: LogRecord): DecodedRecord | undefined {
  const h = r.headers;
  // A record the log served from memory comes with the text and value ingest encoded it from.
  const memo = r.memo;
  const payloadText =
    memo?.text ?? Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength).toString('utf8');
  const type = h[HEADERS.type];
  if (type !== undefined) {
    // Written with the type and expiry headers: the body is not parsed here.
    return new Decoded(
      r.partition,
      r.offset,
      r.key,
      recordTopics(r),
      h[HEADERS.decisionId] ?? '',
      Number(h[HEADERS.revision] ?? 0),
      type,
      h[HEADERS.expiresAt],
      h[HEADERS.holdUntil],
      h[HEADERS.priority],
      payloadText,
      objectOf(memo?.value),
    );
  }
  // Records stored before those headers existed.
  const decision = parseObject(payloadText);
  if (decision === undefined) return undefined;
  return new Decoded(
    r.partition,
    r.offset,
    r.key,
    recordTopics(r),
    String(decision['decisionId'] ?? h[HEADERS.decisionId] ?? ''),
    Number(decision['revision'] ?? h[HEADERS.revision] ?? 0),
    String(decision['type'] ?? ''),
    decision['expiresAt'],
    h[HEADERS.holdUntil],
    h[HEADERS.priority] ?? decision['priority'],
    payloadText,
    decision,
  );
}

/** Header fields of one delivery (DESIGN 5). */
export interface DeliveryHeader {
  readonly rec: DecodedRecord;
  readonly prevPosition: string | null;
  readonly epochJson: string;
  readonly deliveryCount: number;
  readonly expedited: boolean;
  /** A first delivery whose chain predecessor went to another consumer, or none (ADR 0009). */
  readonly handover: boolean;
  readonly expired: boolean;
}

/** Encodes one delivery: the per-subscriber header followed by the payload text, unchanged. */
export function encodeDelivery(h: DeliveryHeader, payload: string): string {
  const r = h.rec;
  return (
    `{"position":"${r.position}","prevPosition":${h.prevPosition === null ? 'null' : `"${h.prevPosition}"`}` +
    `,"epoch":${h.epochJson},"key":${r.keyJson},"topics":${r.topicsJson},"deliveryCount":${h.deliveryCount}` +
    `${h.expedited ? ',"expedited":true' : ''}${h.handover ? ',"handover":true' : ''}${h.expired ? ',"expired":true' : ''},"decision":${payload}}`
  );
}
