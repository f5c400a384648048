/**
 * The shared tail reader (ADR 0009): reads each log partition once at the tail for all live
 * subscriptions, decodes each record once, and asks the SubscriptionMatcher which subscriptions take
 * it, so that the cost per decision follows the candidates, not the number of subscriptions.
 */
import type { EventLog } from '../log/index.ts';
import type { SubscriptionMatcher } from '../routing/index.ts';
import { decodeRecord, type DecodedRecord } from './decoded.ts';

/** Records of one read batch, with the subscriptions each one matched. */
export interface TailBatch {
  readonly partition: number;
  /** First offset of the batch. */
  readonly from: number;
  /** Offset after the batch. */
  readonly to: number;
  /** Per subscription name, the records it takes, in offset order. */
  readonly taken: ReadonlyMap<string, DecodedRecord[]>;
}

/** Reads the tail of every partition and hands matched batches to `deliver` (synchronously). */
export class TailReader {
  readonly #next: number[];
  readonly #abort = new AbortController();
  #loops: Promise<void>[] = [];

  constructor(
    private readonly log: EventLog,
    private readonly matcher: SubscriptionMatcher,
    private readonly deliver: (b: TailBatch) => void,
    private readonly onError: (e: unknown) => void,
    private readonly batchSize = 512,
  ) {
    this.#next = log.extents().map((e) => e.next);
  }

  /** The next offset the tail reader will read in `partition`: a subscription there is live. */
  next(partition: number): number {
    return this.#next[partition] ?? 0;
  }

  /** Starts one read loop per partition. */
  start(): void {
    for (let p = 0; p < this.log.partitions; p++) this.#loops.push(this.#loop(p));
  }

  /** Stops reading; resolves when the loops have ended. */
  async stop(): Promise<void> {
    this.#abort.abort(new Error('stopped'));
    await Promise.allSettled(this.#loops);
  }

  async #loop(p: number): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        const from = this.#next[p] ?? 0;
        await this.log.waitFor(p, from, signal);
        if (this.matcher.size === 0) {
          // No subscription at all: nothing to read or match (ingest-only load); just follow the tail.
          const to = this.log.extents()[p]?.next ?? from;
          this.#next[p] = to;
          this.deliver({ partition: p, from, to, taken: new Map() });
          continue;
        }
        const recs = await this.log.read(p, from, this.batchSize);
        if (signal.aborted) return;
        if (recs.length === 0) {
          const first = this.log.extents()[p]?.first ?? from;
          if (first > from) this.#next[p] = first; // trimmed under us
          continue;
        }
        const taken = new Map<string, DecodedRecord[]>();
        const parse = this.matcher.readsDecisions; // without filters the body is not parsed (decoded.ts)
        for (const r of recs) {
          const d = decodeRecord(r);
          if (d === undefined) continue;
          for (const id of this.matcher.match(parse ? d.decision : null, d.topics)) {
            const l = taken.get(id);
            if (l === undefined) taken.set(id, [d]);
            else l.push(d);
          }
        }
        const to = (recs[recs.length - 1]?.offset ?? from) + 1;
        this.#next[p] = to;
        this.deliver({ partition: p, from, to, taken });
      } catch (e) {
        if (signal.aborted) return;
        this.onError(e);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}
