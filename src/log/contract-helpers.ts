/**
 * Helpers of the EventLog contract suite (./contract.ts): record builders and comparisons that do
 * not depend on an adapter.
 */
import assert from 'node:assert/strict';
import type { AppendRecord, Appended, EventLog, LogRecord } from './port.ts';

/** A deterministic payload of `size` bytes whose content depends on `seed`. */
export function payloadOf(seed: string, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let h = 2166136261;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619);
  for (let i = 0; i < size; i++) {
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
    out[i] = h & 0xff;
  }
  return out;
}

/** A record whose payload and headers are derived from `id`, so that it can be checked after reading. */
export function recordOf(key: string, id: string, size = 64, timestamp = 1_700_000_000_000): AppendRecord {
  return { key, timestamp, headers: { id, key }, payload: payloadOf(id, size) };
}

/** Whether two byte arrays hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** Asserts that a stored record equals what was appended, byte for byte, at the given position. */
export function assertRecord(got: LogRecord | undefined, want: AppendRecord, at: Appended): void {
  assert.ok(got !== undefined, `record at ${at.partition}:${at.offset} missing`);
  assert.equal(got.partition, at.partition, 'partition');
  assert.equal(got.offset, at.offset, 'offset');
  assert.equal(got.key, want.key, 'key');
  assert.equal(got.timestamp, want.timestamp, 'timestamp');
  assert.deepEqual({ ...got.headers }, { ...want.headers }, 'headers');
  assert.ok(got.payload instanceof Uint8Array, 'payload is a Uint8Array');
  assert.equal(got.payload.byteLength, want.payload.byteLength, 'payload length');
  assert.ok(sameBytes(got.payload, want.payload), `payload bytes at ${at.partition}:${at.offset}`);
}

/** Reads every record of a partition in [from, to) with calls of `step` records. */
export async function readRange(log: EventLog, partition: number, from: number, to: number, step = 1000) {
  const out: LogRecord[] = [];
  let off = from;
  while (off < to) {
    const got = await log.read(partition, off, Math.min(step, to - off));
    if (got.length === 0) break;
    out.push(...got);
    off = got[got.length - 1]!.offset + 1;
  }
  return out;
}

/** The extent of one partition. */
export function extentOf(log: EventLog, partition: number) {
  const e = log.extents().find((x) => x.partition === partition);
  assert.ok(e !== undefined, `no extent for partition ${partition}`);
  return e;
}

/** Lets pending I/O callbacks and microtasks run, without assuming any duration. */
export function turn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
