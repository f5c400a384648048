/**
 * Checkpoints of a PulsarLog (ADR 0016, docs/pulsar-format.md): what reading the commit topic up to
 * one of its records yields (the epoch, each partition's first offset and runs, the highest sequence
 * applied per writer), stored on `<topic>.checkpoints` so that opening the log reads the commit topic
 * only after that record.
 *
 * A checkpoint is one or more chunks (one message each, at most `maxRuns` runs per chunk, so that a
 * chunk fits the broker's message and WebSocket frame limits). Chunk 0 is sent first; the others name
 * its message id (`start`). Every chunk names the first chunk of the last complete checkpoint its
 * writer knew (`prev`), the way back when the topic ends with an incomplete one (its writer died).
 */
import type { PulsarClient, StartAt } from './client.ts';
import { FORMAT_VERSION, isIdPair, jsonObject } from './format.ts';
import type { Run } from './format.ts';
import { compareMessageIds, messageId } from './message-id.ts';
import type { MessageId } from './message-id.ts';

/** One partition in a checkpoint: its first offset, and its runs from `base` (the offset of the first). */
export interface CheckpointPart {
  readonly p: number;
  readonly first: number;
  readonly base: number;
  readonly runs: readonly Run[];
}

/** The state of the log after one commit-topic record. */
export interface CheckpointState {
  readonly epoch: string;
  readonly partitions: number;
  /** The last commit-topic record it includes. */
  readonly upTo: MessageId;
  /** The highest commit sequence applied per writer. */
  readonly applied: readonly (readonly [string, number])[];
  readonly parts: readonly CheckpointPart[];
}

/** A checkpoint read back, with the message id of its first chunk. */
export interface StoredCheckpoint {
  readonly state: CheckpointState;
  readonly start: MessageId;
}

type IdPair = readonly [number, number];

/** One message of `<topic>.checkpoints`. */
export interface CheckpointChunk {
  readonly type: 'checkpoint';
  readonly v: number;
  /** The checkpoint's id (its chunks share it). */
  readonly id: string;
  readonly i: number;
  readonly n: number;
  /** Message id of chunk 0 (in chunks 1..n-1). */
  readonly start?: IdPair;
  /** First chunk of the last complete checkpoint the writer knew, if any. */
  readonly prev?: IdPair;
  readonly epoch: string;
  readonly partitions: number;
  readonly upTo: IdPair;
  /** In chunk 0 only. */
  readonly applied?: readonly (readonly [string, number])[];
  /** A partition's runs may go on in the next chunk (its next part has the following base). */
  readonly parts: readonly CheckpointPart[];
}

/** How long reading a checkpoint may take before opening the log fails. */
const READ_TIMEOUT_MS = 30_000;

export const idPair = (id: MessageId): IdPair => [id.ledgerId, id.entryId];
export const fromPair = (p: IdPair): MessageId => messageId(p[0], p[1]);

/** The chunks of a checkpoint (without `start`, which the sender adds once chunk 0 is stored). */
export function toChunks(
  state: CheckpointState,
  id: string,
  prev: MessageId | undefined,
  maxRuns: number,
): CheckpointChunk[] {
  const groups: CheckpointPart[][] = [[]];
  let room = maxRuns;
  for (const part of state.parts) {
    let base = part.base;
    let k = 0;
    do {
      if (room === 0) {
        groups.push([]);
        room = maxRuns;
      }
      const runs = part.runs.slice(k, k + room);
      (groups[groups.length - 1] as CheckpointPart[]).push({ p: part.p, first: part.first, base, runs });
      for (const r of runs) base += r[3];
      k += runs.length;
      room -= runs.length;
    } while (k < part.runs.length);
  }
  return groups.map((parts, i) => ({
    type: 'checkpoint',
    v: FORMAT_VERSION,
    id,
    i,
    n: groups.length,
    ...(prev === undefined ? {} : { prev: idPair(prev) }),
    epoch: state.epoch,
    partitions: state.partitions,
    upTo: idPair(state.upTo),
    ...(i === 0 ? { applied: state.applied } : {}),
    parts,
  }));
}

/** Decodes a chunk; undefined for anything else. */
export function decodeChunk(payload: Uint8Array): CheckpointChunk | undefined {
  const c = jsonObject(payload) as Partial<CheckpointChunk> | undefined;
  if (c === undefined || c.type !== 'checkpoint') return undefined;
  if (typeof c.id !== 'string' || !Number.isInteger(c.i) || !Number.isInteger(c.n)) return undefined;
  if (!isIdPair(c.upTo) || typeof c.epoch !== 'string' || !Array.isArray(c.parts)) return undefined;
  return c as CheckpointChunk;
}

/** The state of a checkpoint's chunks (in order). */
export function fromChunks(chunks: readonly CheckpointChunk[]): CheckpointState {
  const head = chunks[0] as CheckpointChunk;
  const parts = new Map<number, { p: number; first: number; base: number; runs: Run[] }>();
  for (const c of chunks)
    for (const part of c.parts) {
      const have = parts.get(part.p);
      if (have === undefined) parts.set(part.p, { ...part, runs: [...part.runs] });
      else have.runs.push(...part.runs);
    }
  return {
    epoch: head.epoch,
    partitions: head.partitions,
    upTo: fromPair(head.upTo),
    applied: head.applied ?? [],
    parts: [...parts.values()],
  };
}

/**
 * Reads `topic` from `start`, giving each message's id and payload to `visit` until it answers true.
 * Rejects after the timeout, or when the topic ends first (`until`: the last id there is).
 */
export async function readUntil(
  client: PulsarClient,
  topic: string,
  start: StartAt,
  until: MessageId,
  visit: (id: MessageId, payload: Uint8Array) => boolean,
): Promise<void> {
  const reader = client.reader(topic, start);
  const timer = setTimeout(() => void reader.close(), READ_TIMEOUT_MS);
  try {
    for await (const ev of reader) {
      if (ev.type !== 'messages') continue;
      for (const m of ev.messages) {
        if (visit(m.id, m.payload)) return;
        if (compareMessageIds(m.id, until) >= 0) throw new Error(`${topic} ended before what was sought`);
      }
    }
    throw new Error(`${topic}: no answer within ${READ_TIMEOUT_MS} ms`);
  } finally {
    clearTimeout(timer);
    await reader.close();
  }
}

/**
 * The last complete checkpoint of a checkpoint topic: the one its last message belongs to, or, when
 * that one is incomplete, the one it names as `prev`. Undefined when the topic holds none.
 */
export async function readLastCheckpoint(
  client: PulsarClient,
  topic: string,
): Promise<StoredCheckpoint | undefined> {
  const last = await client.admin.lastMessageId(topic);
  if (last === undefined) return undefined;
  let tail: CheckpointChunk | undefined;
  await readUntil(client, topic, { at: last }, last, (_, payload) => {
    tail = decodeChunk(payload);
    return true;
  });
  if (tail === undefined) return undefined;
  const complete = tail.i === tail.n - 1;
  const from = complete
    ? tail.i === 0
      ? last
      : tail.start && fromPair(tail.start)
    : tail.prev && fromPair(tail.prev);
  if (from === undefined) return undefined;
  const chunks: CheckpointChunk[] = [];
  await readUntil(client, topic, { at: from }, last, (_, payload) => {
    const c = decodeChunk(payload);
    if (c === undefined) return false;
    if (chunks.length === 0 && c.i !== 0)
      throw new Error(`${topic}: no first chunk at the checkpoint's start`);
    if (chunks.length === 0 || (c.id === (chunks[0] as CheckpointChunk).id && c.i === chunks.length))
      chunks.push(c);
    return chunks.length === (chunks[0] as CheckpointChunk).n;
  });
  return { state: fromChunks(chunks), start: from };
}
