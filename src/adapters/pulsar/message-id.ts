/**
 * Pulsar message ids. The WebSocket API carries them as base64 of Pulsar's `MessageIdData` protobuf
 * (ledgerId = 1, entryId = 2, partition = 3, batch_index = 4, batch_size = 6, all varints); this
 * module decodes and encodes the fields cds uses and orders ids within one topic.
 */

/** A message's place in one topic (or partition): ledger, entry, and index inside a batched entry. */
export interface MessageId {
  readonly ledgerId: number;
  readonly entryId: number;
  /** Index inside a batched entry; -1 when the entry holds one message. */
  readonly batchIndex: number;
  /** Partition index, -1 for a non-partitioned topic (ignored when comparing). */
  readonly partition: number;
  /** Messages in the batched entry, 0 when unknown or not batched. */
  readonly batchSize: number;
}

function readVarint(bytes: Uint8Array, at: { i: number }): bigint {
  let result = 0n;
  for (let shift = 0n; at.i < bytes.length; shift += 7n) {
    const b = bytes[at.i++] ?? 0;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return result;
  }
  throw new Error('truncated varint in message id');
}

function writeVarint(out: number[], value: bigint): void {
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

/** Decodes a base64 `MessageIdData` as the WebSocket API sends it. */
export function decodeMessageId(base64: string): MessageId {
  const bytes = Buffer.from(base64, 'base64');
  const at = { i: 0 };
  let ledgerId = -1;
  let entryId = -1;
  let partition = -1;
  let batchIndex = -1;
  let batchSize = 0;
  while (at.i < bytes.length) {
    const tag = Number(readVarint(bytes, at));
    const field = tag >> 3;
    const wire = tag & 7;
    if (wire === 0) {
      const v = readVarint(bytes, at);
      const n = Number(BigInt.asIntN(64, v));
      if (field === 1) ledgerId = n;
      else if (field === 2) entryId = n;
      else if (field === 3) partition = Number(BigInt.asIntN(32, v));
      else if (field === 4) batchIndex = Number(BigInt.asIntN(32, v));
      else if (field === 6) batchSize = Number(BigInt.asIntN(32, v));
    } else if (wire === 2) {
      at.i += Number(readVarint(bytes, at));
    } else if (wire === 5) {
      at.i += 4;
    } else if (wire === 1) {
      at.i += 8;
    } else throw new Error(`unexpected wire type ${wire} in message id`);
  }
  if (ledgerId === -1 && entryId === -1 && bytes.length === 0) throw new Error('empty message id');
  return { ledgerId, entryId, batchIndex, partition, batchSize };
}

/** Encodes a message id as base64 `MessageIdData` (the WebSocket reader's `messageId` parameter). */
export function encodeMessageId(id: MessageId): string {
  const out: number[] = [];
  out.push(1 << 3);
  writeVarint(out, BigInt(id.ledgerId));
  out.push(2 << 3);
  writeVarint(out, BigInt(id.entryId));
  if (id.partition >= 0) {
    out.push(3 << 3);
    writeVarint(out, BigInt(id.partition));
  }
  if (id.batchIndex >= 0) {
    out.push(4 << 3);
    writeVarint(out, BigInt(id.batchIndex));
    if (id.batchSize > 0) {
      out.push(6 << 3);
      writeVarint(out, BigInt(id.batchSize));
    }
  }
  return Buffer.from(out).toString('base64');
}

/** Orders two ids of the same topic (ledger, entry, batch index); negative when a is first. */
export function compareMessageIds(a: MessageId, b: MessageId): number {
  return a.ledgerId - b.ledgerId || a.entryId - b.entryId || a.batchIndex - b.batchIndex;
}

/** A short string naming a message within its topic: `ledger:entry:batchIndex`. */
export function messageIdKey(id: MessageId): string {
  return `${id.ledgerId}:${id.entryId}:${id.batchIndex}`;
}

/** A message id built from its parts. */
export function messageId(ledgerId: number, entryId: number, batchIndex = -1, partition = -1): MessageId {
  return { ledgerId, entryId, batchIndex, partition, batchSize: 0 };
}

/**
 * The id a reader must start *after* to receive `id` itself first: the previous batch index in the
 * same entry, or the previous entry (entry -1 means "before the first entry of the ledger").
 */
export function justBefore(id: MessageId): MessageId {
  if (id.batchIndex > 0) return { ...id, batchIndex: id.batchIndex - 1 };
  return {
    ledgerId: id.ledgerId,
    entryId: id.entryId - 1,
    batchIndex: -1,
    partition: id.partition,
    batchSize: 0,
  };
}
