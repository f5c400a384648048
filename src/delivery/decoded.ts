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
  /** The parsed decision (shared, never mutated). */
  readonly decision: Record<string, unknown>;
}

/** Decodes one record; returns undefined for a payload that is not a JSON object (never expected). */
export function decodeRecord(r: LogRecord): DecodedRecord | undefined {
  const payloadText = Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength).toString(
    'utf8',
  );
  let decision: Record<string, unknown>;
  try {
    decision = JSON.parse(payloadText) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof decision !== 'object' || decision === null) return undefined;
  const topics = recordTopics(r);
  const exp = decision['expiresAt'];
  const expMs = typeof exp === 'string' ? Date.parse(exp) : Number.NaN;
  const priority = Number(r.headers[HEADERS.priority] ?? decision['priority'] ?? 0);
  const hold = r.headers[HEADERS.holdUntil];
  const holdMs = hold === undefined ? Number.NaN : Date.parse(hold);
  return {
    partition: r.partition,
    offset: r.offset,
    position: formatPosition(r.partition, r.offset),
    key: r.key,
    keyJson: JSON.stringify(r.key),
    topics,
    topicsJson: JSON.stringify(topics),
    priority: Number.isInteger(priority) && priority >= 0 && priority <= 9 ? priority : 0,
    decisionId: String(decision['decisionId'] ?? r.headers[HEADERS.decisionId] ?? ''),
    revision: Number(decision['revision'] ?? r.headers[HEADERS.revision] ?? 0),
    type: String(decision['type'] ?? ''),
    expiresAt: Number.isNaN(expMs) ? undefined : expMs,
    holdUntil: Number.isNaN(holdMs) ? undefined : holdMs,
    payloadText,
    decision,
  };
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
