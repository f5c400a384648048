/**
 * Pulsar must not delete what a cds cursor still needs (DESIGN 6; ADR 0015): a durable subscription on
 * each log partition is kept at the slowest committed cursor of all subscriptions. Only committed
 * cursors count, and in cluster mode only a lease holder's commit is ever stored (its token fences
 * it), so a stale owner cannot hold the pin back nor move it on. Every instance may run it: the pin is
 * computed from the shared store alone, so concurrent runs move it to the same place.
 */
import type { SubscriptionStore } from '../state/subscriptions-port.ts';

/** Where the pin lives (the composition root implements it on the Pulsar admin API). */
export interface PinTarget {
  /** Partitions of the log. */
  readonly partitions: number;
  /** The next offset of a partition (what a cursor that read everything points at). */
  next(partition: number): number;
  /** Keeps `partition` from `offset` on: the durable subscription's next message is that record. */
  pin(partition: number, offset: number): Promise<void>;
}

/** Per partition, the slowest committed cursor: its first pending offset, else its read position. */
export async function slowestCursors(store: SubscriptionStore, target: PinTarget): Promise<number[]> {
  const floor = Array.from({ length: target.partitions }, (_, p) => target.next(p));
  for (const r of await store.list())
    for (const c of await store.loadCursors(r.name)) {
      const f = c.pending[0]?.[0] ?? c.next;
      if (c.partition < floor.length && f < (floor[c.partition] as number)) floor[c.partition] = f;
    }
  return floor;
}

/** Moves the pin of every partition to the slowest committed cursor, every `intervalMs`. */
export class RetentionPin {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** The offsets last pinned, per partition (skipped when unchanged). */
  readonly pinned: number[] = [];

  constructor(
    private readonly store: SubscriptionStore,
    private readonly target: PinTarget,
    private readonly onError: (e: unknown) => void,
  ) {}

  /** Pins once now, then every `intervalMs`. */
  start(intervalMs: number): void {
    void this.run().catch(this.onError);
    this.#timer = setInterval(() => void this.run().catch(this.onError), intervalMs);
    this.#timer.unref();
  }

  /** One pass (one at a time). */
  run(): Promise<void> {
    this.#running ??= (async () => {
      const floor = await slowestCursors(this.store, this.target);
      for (const [p, offset] of floor.entries()) {
        if (this.pinned[p] === offset) continue;
        await this.target.pin(p, offset);
        this.pinned[p] = offset;
      }
    })().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running?.catch(() => undefined);
  }
}
