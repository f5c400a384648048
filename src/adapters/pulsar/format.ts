/**
 * What cds writes to Pulsar (docs/pulsar-format.md, ADR 0014):
 *
 * - a **decision message** per record on the partition topic `<topic>-partition-N`: the payload is
 *   the record's payload (the decision's JSON) byte for byte, the Pulsar key is the ordering key, the
 *   properties are the record's headers (decisionId, revision, priority, topics, ...) plus `key`, and
 *   cds's own `cds.*` properties (`cds.ts`, `cds.batch`, `cds.synth`);
 * - **log records** on the commit topic `<topic>.commits` (JSON payloads): `genesis` (epoch and
 *   partition count), `commit` (the decision messages of one batch that are now part of the log, in
 *   order, per partition), `trim` (a partition's new first offset), `checkpointed` (a checkpoint of
 *   all of that is complete on `<topic>.checkpoints`, see checkpoint.ts).
 */
import { CdsError } from '../../errors/index.ts';
import type { AppendRecord } from '../../log/port.ts';
import type { OutgoingMessage } from './client.ts';
import type { MessageId } from './message-id.ts';

/** Property holding the record's timestamp (ms since the epoch, decimal). */
export const PROP_TIMESTAMP = 'cds.ts';
/** Property holding the id of the batch (commit) the message belongs to. */
export const PROP_BATCH = 'cds.batch';
/** Property listing properties that cds added for readers but that are not record headers. */
export const PROP_SYNTH = 'cds.synth';
/** Prefix reserved for cds's own properties; record headers may not use it. */
export const RESERVED_PREFIX = 'cds.';
/** The header that becomes the `key` property when the record has no header of that name. */
const KEY_PROPERTY = 'key';
/** Limit of one record's headers in bytes (the port's contract). */
export const MAX_HEADER_BYTES = 64 * 1024;
/** Format version of the commit-topic records. */
export const FORMAT_VERSION = 1;

const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

function invalid(message: string): CdsError {
  return new CdsError('VALIDATION_FAILED', message, {
    details: { errors: [{ path: '', code: 'invalid_record', message }] },
  });
}

/**
 * Checks one record before anything of its batch is sent; returns its size in bytes (payload, key
 * and headers). Rejects what Pulsar could not carry faithfully.
 */
export function checkRecord(r: AppendRecord, i: number, maxPayloadBytes: number): number {
  if (!(r.payload instanceof Uint8Array)) throw invalid(`record ${i}: payload must be bytes`);
  if (typeof r.key !== 'string') throw invalid(`record ${i}: key must be a string`);
  if (!wellFormed(r.key)) throw invalid(`record ${i}: key is not well-formed Unicode`);
  if (!Number.isFinite(r.timestamp)) throw invalid(`record ${i}: timestamp must be a number`);
  let headerBytes = 0;
  for (const k in r.headers) {
    const v = r.headers[k];
    if (typeof v !== 'string') throw invalid(`record ${i}: header '${k}' must be a string`);
    if (k.startsWith(RESERVED_PREFIX))
      throw invalid(`record ${i}: header '${k}': the prefix 'cds.' is reserved`);
    if (!wellFormed(k) || !wellFormed(v))
      throw invalid(`record ${i}: header '${k}' is not well-formed Unicode (Pulsar properties are UTF-8)`);
    headerBytes += Buffer.byteLength(k, 'utf8') + Buffer.byteLength(v, 'utf8');
  }
  if (headerBytes > MAX_HEADER_BYTES) throw invalid(`record ${i}: headers exceed ${MAX_HEADER_BYTES} bytes`);
  if (r.payload.byteLength > maxPayloadBytes)
    throw invalid(`record ${i}: payload of ${r.payload.byteLength} bytes exceeds ${maxPayloadBytes}`);
  return r.payload.byteLength + Buffer.byteLength(r.key, 'utf8') + headerBytes;
}

/** The decision message of a record. */
export function toMessage(r: AppendRecord, batch: string): OutgoingMessage {
  const properties: Record<string, string> = { ...r.headers };
  if (!(KEY_PROPERTY in properties)) {
    properties[KEY_PROPERTY] = r.key;
    properties[PROP_SYNTH] = KEY_PROPERTY;
  }
  properties[PROP_TIMESTAMP] = String(r.timestamp);
  properties[PROP_BATCH] = batch;
  return { payload: r.payload, properties, key: r.key, eventTime: r.timestamp };
}

/** The record fields of a decision message as a reader receives it. */
export interface DecodedRecord {
  readonly key: string;
  readonly timestamp: number;
  readonly headers: Record<string, string>;
  readonly payload: Uint8Array;
}

/** The record of a decision message (headers without cds's own properties). */
export function fromMessage(m: {
  payload: Uint8Array;
  properties: Readonly<Record<string, string>>;
  key: string | undefined;
}): DecodedRecord {
  const synth = new Set((m.properties[PROP_SYNTH] ?? '').split(',').filter((s) => s !== ''));
  const headers: Record<string, string> = {};
  for (const k in m.properties) {
    if (k.startsWith(RESERVED_PREFIX) || synth.has(k)) continue;
    headers[k] = m.properties[k] as string;
  }
  return {
    key: m.key ?? m.properties[KEY_PROPERTY] ?? '',
    timestamp: Number(m.properties[PROP_TIMESTAMP] ?? 0),
    headers,
    payload: m.payload,
  };
}

/**
 * A run of decision messages in one partition topic: `n` consecutive messages starting at
 * (ledger, entry, batchIndex). With batchIndex >= 0 they are batch indexes batchIndex.. of one
 * batched entry; with batchIndex -1 they are n consecutive single-message entries of one ledger.
 */
export type Run = readonly [ledgerId: number, entryId: number, batchIndex: number, n: number, bytes: number];

/** One partition's part of a commit: its records in log order, as runs. */
export interface CommitPart {
  readonly p: number;
  readonly runs: readonly Run[];
}

/** A record of the commit topic. */
export type LogEntry =
  | {
      readonly type: 'genesis';
      readonly v: number;
      readonly epoch: string;
      readonly partitions: number;
      readonly at: number;
    }
  | {
      readonly type: 'commit';
      readonly v: number;
      readonly batch: string;
      readonly parts: readonly CommitPart[];
    }
  | { readonly type: 'trim'; readonly v: number; readonly p: number; readonly first: number }
  | {
      /** A checkpoint (checkpoint.ts) is complete on the checkpoint topic: where it starts, what it covers. */
      readonly type: 'checkpointed';
      readonly v: number;
      /** Message id [ledger, entry] of the checkpoint's first chunk on `<topic>.checkpoints`. */
      readonly start: readonly [number, number];
      /** Message id [ledger, entry] of the last commit-topic record the checkpoint includes. */
      readonly upTo: readonly [number, number];
    };

/** Encodes a commit-topic record (JSON). */
export function encodeEntry(e: LogEntry): Uint8Array {
  return Buffer.from(JSON.stringify(e), 'utf8');
}

/** The JSON object of a commit- or checkpoint-topic payload; undefined when it is not one. */
export function jsonObject(payload: Uint8Array): Record<string, unknown> | undefined {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  return v === null || typeof v !== 'object' ? undefined : (v as Record<string, unknown>);
}

/** Decodes a commit-topic record; undefined for anything this version does not know (skipped). */
export function decodeEntry(payload: Uint8Array): LogEntry | undefined {
  const e = jsonObject(payload);
  if (e === undefined) return undefined;
  if (e.type === 'genesis' && typeof e.epoch === 'string' && Number.isInteger(e.partitions))
    return e as unknown as LogEntry;
  if (e.type === 'commit' && typeof e.batch === 'string' && Array.isArray(e.parts))
    return e as unknown as LogEntry;
  if (e.type === 'trim' && Number.isInteger(e.p) && Number.isInteger(e.first))
    return e as unknown as LogEntry;
  if (e.type === 'checkpointed' && isIdPair(e.start) && isIdPair(e.upTo)) return e as unknown as LogEntry;
  return undefined;
}

/** Whether a value is a message id as [ledgerId, entryId] (commit and checkpoint topics are unbatched). */
export function isIdPair(v: unknown): v is [number, number] {
  return Array.isArray(v) && v.length === 2 && Number.isInteger(v[0]) && Number.isInteger(v[1]);
}

/** Packs message ids (in log order) with their sizes into runs. */
export function toRuns(ids: readonly { id: MessageId; bytes: number }[]): Run[] {
  const runs: [number, number, number, number, number][] = [];
  for (const { id, bytes } of ids) {
    const last = runs[runs.length - 1];
    if (last !== undefined) {
      const [l, e, b, n] = last;
      const batched =
        b >= 0 && id.batchIndex >= 0 && l === id.ledgerId && e === id.entryId && id.batchIndex === b + n;
      const single = b < 0 && id.batchIndex < 0 && l === id.ledgerId && id.entryId === e + n;
      if (batched || single) {
        last[3] = n + 1;
        last[4] += bytes;
        continue;
      }
    }
    runs.push([id.ledgerId, id.entryId, id.batchIndex, 1, bytes]);
  }
  return runs;
}

/** The i-th message id of a run. */
export function runId(run: Run, i: number, partition: number): MessageId {
  const [l, e, b] = run;
  return b >= 0
    ? { ledgerId: l, entryId: e, batchIndex: b + i, partition, batchSize: 0 }
    : { ledgerId: l, entryId: e + i, batchIndex: -1, partition, batchSize: 0 };
}
