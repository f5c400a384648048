/**
 * What subscribers received, as fixed-size binary records in one file per subscriber (written by
 * bench/lib/subscriber.ts, read by the harness): a run of 60 s at 200,000 decisions/s with two
 * deliveries each is 24 million receipts, too many for JSON over IPC.
 *
 * Record (little-endian, {@link RECORD_BYTES} bytes): decision number n (uint32; the id is
 * `<prefix>-<n>`, 0xFFFFFFFF for an id of another run), revision (uint16), deliveryCount (uint16),
 * the position's partition (uint32) and offset (float64), the receive time (float64, shared
 * monotonic ms, bench/lib/clock.ts).
 */
import { closeSync, openSync, writeSync } from 'node:fs';

/** Bytes per receipt. */
export const RECORD_BYTES = 28;
/** The decision number of an id that is not `<prefix>-<n>`. */
export const FOREIGN = 0xffffffff;

/** One receipt, decoded. */
export interface Receipt {
  readonly n: number;
  readonly revision: number;
  readonly deliveryCount: number;
  readonly partition: number;
  readonly offset: number;
  readonly recvMono: number;
}

/** The decision number of `id` when it is `<prefix>-<n>` (prefix given with its dash), else FOREIGN. */
export function decisionNumber(id: unknown, prefixDash: string): number {
  if (typeof id !== 'string' || !id.startsWith(prefixDash)) return FOREIGN;
  const n = Number(id.slice(prefixDash.length));
  return Number.isInteger(n) && n >= 0 && n < FOREIGN ? n : FOREIGN;
}

/** Appends receipts to one subscriber's file, a buffer at a time. */
export class ReceiptWriter {
  readonly #fd: number;
  readonly #buf = Buffer.allocUnsafe(RECORD_BYTES * 1024);
  #at = 0;
  /** Receipts written so far. */
  count = 0;

  constructor(file: string) {
    this.#fd = openSync(file, 'w');
  }

  /** Records one delivery received at `recvMono`. */
  add(n: number, revision: number, deliveryCount: number, position: string, recvMono: number): void {
    if (this.#at === this.#buf.length) this.flush();
    const colon = position.indexOf(':');
    const b = this.#buf;
    const o = this.#at;
    b.writeUInt32LE(n, o);
    b.writeUInt16LE(Math.min(revision, 0xffff), o + 4);
    b.writeUInt16LE(Math.min(deliveryCount, 0xffff), o + 6);
    b.writeUInt32LE(Number(position.slice(0, colon)) >>> 0, o + 8);
    b.writeDoubleLE(Number(position.slice(colon + 1)), o + 12);
    b.writeDoubleLE(recvMono, o + 20);
    this.#at += RECORD_BYTES;
    this.count++;
  }

  /** Writes what is buffered. */
  flush(): void {
    if (this.#at > 0) writeSync(this.#fd, this.#buf, 0, this.#at);
    this.#at = 0;
  }

  /** Flushes and closes the file. */
  close(): void {
    this.flush();
    closeSync(this.#fd);
  }
}

/**
 * Calls `fn` for every receipt of a file's contents, in the order they were received. The receipt
 * object is reused (tens of millions of them in a long run): read it inside `fn`, do not keep it.
 */
export function forEachReceipt(data: Buffer, fn: (r: Readonly<Receipt>) => void): void {
  const r = { n: 0, revision: 0, deliveryCount: 0, partition: 0, offset: 0, recvMono: 0 };
  for (let o = 0; o + RECORD_BYTES <= data.length; o += RECORD_BYTES) {
    r.n = data.readUInt32LE(o);
    r.revision = data.readUInt16LE(o + 4);
    r.deliveryCount = data.readUInt16LE(o + 6);
    r.partition = data.readUInt32LE(o + 8);
    r.offset = data.readDoubleLE(o + 12);
    r.recvMono = data.readDoubleLE(o + 20);
    fn(r);
  }
}
