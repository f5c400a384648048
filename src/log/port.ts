/**
 * The EventLog port (DESIGN 6): where decisions are stored, in order, durably. Embedded mode
 * implements it with a local segment log; cluster mode with Apache Pulsar. Every adapter passes the
 * contract suite in ./contract.ts unchanged.
 *
 * Records are opaque to the log except for their key (which picks the partition), their timestamp and
 * a few string headers (decisionId, revision, priority, topics) that adapters may expose natively
 * (Pulsar message properties).
 */

/** One record to append. */
export interface AppendRecord {
  /** Ordering key; records of one key go to one partition, in append order. */
  readonly key: string;
  /** Milliseconds since the epoch at which the service received it (receivedAt). */
  readonly timestamp: number;
  /** Small string headers; adapters store them beside the payload. At most 64 KiB in all. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body (the decision as UTF-8 JSON); stored and returned byte for byte. */
  readonly payload: Uint8Array;
  /**
   * In-process only, never stored: what the writer already holds of the payload, its text and its
   * parsed value. An adapter that serves recent records from memory returns it with them, so that
   * live delivery neither decodes nor parses again what ingest just encoded (DESIGN 9).
   */
  readonly memo?: { readonly text: string; readonly value: unknown };
}

/** A stored record, as read back. */
export interface LogRecord extends AppendRecord {
  readonly partition: number;
  /** Dense, increasing offset within the partition. */
  readonly offset: number;
}

/** The extent of one partition. */
export interface PartitionExtent {
  readonly partition: number;
  /** Offset of the first record still held (after trimming); equals `next` when empty. */
  readonly first: number;
  /** Offset the next appended record will get. */
  readonly next: number;
}

/** Where an appended record landed. */
export interface Appended {
  readonly partition: number;
  readonly offset: number;
}

/** A durable, partitioned, append-only log. */
export interface EventLog {
  /** Identifier of this incarnation of the log; changes when it is restored or reset. */
  readonly epoch: string;
  /** Number of partitions (fixed for the life of the log). */
  readonly partitions: number;

  /** The partition a key maps to (stable for the life of the log). */
  partitionOf(key: string): number;

  /**
   * Appends a batch atomically and durably: when the promise resolves every record is on stable
   * storage (fsync'd, or acknowledged by the broker) and will be found after any crash; when it
   * rejects, none of them will be found (a batch is never partly stored). Results are in input order.
   * Concurrent calls are group-committed. Rejects with STORAGE_UNAVAILABLE (retriable) on I/O failure,
   * and with SHUTTING_DOWN after close() began.
   */
  append(records: readonly AppendRecord[]): Promise<Appended[]>;

  /**
   * Reads up to `maxRecords` records of one partition from `fromOffset` (inclusive), in order. Returns
   * fewer (or none) at the tail. Reading below `first` starts at `first`. Only acknowledged records are
   * ever returned.
   */
  read(partition: number, fromOffset: number, maxRecords: number): Promise<LogRecord[]>;

  /** The record at one offset, or undefined if it is trimmed or not yet written. */
  readOne(partition: number, offset: number): Promise<LogRecord | undefined>;

  /**
   * Resolves once the partition holds a record at `offset` or beyond (immediately if it already does),
   * or when `signal` aborts (then it rejects with the abort reason).
   */
  waitFor(partition: number, offset: number, signal?: AbortSignal): Promise<void>;

  /**
   * Drops whole stored units (segments, ledgers) of a partition that lie entirely before `beforeOffset`;
   * returns the new first offset. Never drops a record at or after `beforeOffset`.
   */
  trim(partition: number, beforeOffset: number): Promise<number>;

  /**
   * The first offset `trim(partition, beforeOffset)` would leave now, without trimming (retention
   * decides who loses what before it trims, ADR 0017). Trimming to the answer then drops exactly the
   * units before it, whatever is appended meanwhile.
   */
  trimPoint(partition: number, beforeOffset: number): number;

  /** First and next offsets of every partition. */
  extents(): PartitionExtent[];

  /** Total stored bytes (payload and framing), for status and retention. */
  storedBytes(): number;

  /** Completes pending appends, flushes, releases files and locks. Idempotent. */
  close(): Promise<void>;
}
