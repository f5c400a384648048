/**
 * Recently written or read decision messages, by partition and message id, bounded by bytes and
 * evicted oldest first. Serves reads near the tail without asking Pulsar again.
 */
import type { DecodedRecord } from './format.ts';
import { messageIdKey } from './message-id.ts';
import type { MessageId } from './message-id.ts';

/** Per-entry bookkeeping on top of the record's own bytes. */
const OVERHEAD = 200;

/** A byte-bounded FIFO cache of decoded records. */
export class RecordCache {
  readonly #max: number;
  readonly #map = new Map<string, { rec: DecodedRecord; size: number }>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  static key(partition: number, id: MessageId): string {
    return `${partition}/${messageIdKey(id)}`;
  }

  get(partition: number, id: MessageId): DecodedRecord | undefined {
    return this.#map.get(RecordCache.key(partition, id))?.rec;
  }

  has(partition: number, id: MessageId): boolean {
    return this.#map.has(RecordCache.key(partition, id));
  }

  set(partition: number, id: MessageId, rec: DecodedRecord, size: number): void {
    const k = RecordCache.key(partition, id);
    if (this.#map.has(k)) return;
    const s = size + OVERHEAD;
    this.#map.set(k, { rec, size: s });
    this.#bytes += s;
    if (this.#bytes <= this.#max) return;
    for (const [key, v] of this.#map) {
      if (this.#bytes <= this.#max) break;
      this.#map.delete(key);
      this.#bytes -= v.size;
    }
  }
}
