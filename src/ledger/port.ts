/**
 * The ledger store (DESIGN 5; ADR 0011): per subscription and partition, one small record per cursor
 * commit that changed something, saying which offsets that commit saw delivered and resolved, and
 * which resolutions were exceptions (not acks). Nothing is written per delivery.
 */

/** What one cursor commit changed for one subscription on one partition. */
export interface CommitRecord {
  /** Commit time, milliseconds since the epoch. */
  readonly t: number;
  /** Smallest offset named in the record. */
  readonly lo: number;
  /** One past the largest offset named in the record. */
  readonly hi: number;
  /** Offsets resolved since the previous commit, as flat half-open ranges [from, to, from, to, ...]. */
  readonly r: readonly number[];
  /** Offsets seen delivered (delivery count 1 or more, still pending) for the first time, as flat ranges. */
  readonly d: readonly number[];
  /** Resolutions that were not acks: [offset, outcome] (filtered, expired, superseded, deadLettered, skipped). */
  readonly x: readonly (readonly [number, string])[];
  /**
   * Offsets a `drop` retention policy removed before the subscription acknowledged them, as flat
   * half-open ranges (ADR 0017): written before the log is trimmed, so no loss goes unrecorded.
   */
  readonly l?: readonly number[];
}

/** Where a record belongs. */
export interface CommitRecordAt {
  readonly subscription: string;
  readonly partition: number;
  readonly record: CommitRecord;
}

/** Durable storage of commit records, with its own retention (independent of the log's). */
export interface LedgerStore {
  /** Stores records in one durable write. */
  append(records: readonly CommitRecordAt[]): Promise<void>;
  /**
   * Records of a subscription and partition whose span [lo, hi) contains `offset`, the largest `lo`
   * first, examining at most `maxScan` records (older history beyond it is not searched).
   */
  find(subscription: string, partition: number, offset: number, maxScan: number): Promise<CommitRecord[]>;
  /**
   * Removes records committed before `before` (ms since the epoch), in bounded batches (never one
   * transaction over the whole store, so commits go on being recorded meanwhile); resolves how many
   * were removed.
   */
  prune(before: number): Promise<number>;
  /**
   * The commit time of the `n`-th newest record (n >= 1; ties in any order), or undefined when the
   * store holds fewer than `n` records: `prune(nthNewestTime(max + 1) + 1)` leaves at most `max`.
   * Reads every record's time (a sort, or a top-n sort in PostgreSQL): called once per retention run.
   */
  nthNewestTime(n: number): Promise<number | undefined>;
  /** Flushes and releases resources. Idempotent. */
  close(): Promise<void>;
}
