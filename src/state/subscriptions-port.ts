/**
 * The SubscriptionStore port (DESIGN 5, 6; ADR 0009): durable subscriptions with versions, cursor
 * snapshots and dead letters. Embedded mode implements it on its own LMDB environment; cluster mode
 * on PostgreSQL. Every adapter passes ./subscriptions-contract.ts unchanged.
 */
import { CdsError } from '../errors/index.ts';

/** A stored subscription: its definition (validated by the subscriptions module) and bookkeeping. */
export interface SubscriptionRecord {
  /** Unique name (the identifier in the API). */
  readonly name: string;
  /** 1 at creation, +1 on every change. */
  readonly version: number;
  /** The definition as JSON (opaque to the store). */
  readonly spec: Readonly<Record<string, unknown>>;
  /** ISO 8601. */
  readonly createdAt: string;
  /** ISO 8601. */
  readonly updatedAt: string;
}

/** The cursor of one subscription on one partition (see ADR 0009). */
export interface CursorSnapshot {
  readonly partition: number;
  /** The next offset the subscription reads. */
  readonly next: number;
  /**
   * Offsets in [ackFloor, next) still unresolved, ascending, with their delivery counts and, once
   * delivered, the offset their delivery named as prevPosition (null: none), kept so that a
   * redelivery after a restart names the same one.
   */
  readonly pending: readonly (readonly [offset: number, deliveryCount: number, prev?: number | null])[];
  /** Per key, the offset the prevPosition chain resumes from. */
  readonly anchors: readonly (readonly [key: string, offset: number])[];
}

/** A decision a subscription gave up on, pointing at the log. */
export interface DeadLetter {
  readonly partition: number;
  readonly offset: number;
  readonly key: string;
  readonly decisionId: string;
  readonly revision: number;
  /** `max_deliveries` or `transform_failed`. */
  readonly reason: string;
  readonly deliveryCount: number;
  /** ISO 8601. */
  readonly at: string;
  /** The failure message, when there was one. */
  readonly error?: string;
}

/** Subscriptions, cursors and dead letters. */
export interface SubscriptionStore {
  /** Every subscription, by name ascending. */
  list(): Promise<SubscriptionRecord[]>;
  /** One subscription, or undefined. */
  get(name: string): Promise<SubscriptionRecord | undefined>;
  /**
   * Creates (`expectedVersion` 0) or replaces (`expectedVersion` = the stored version) a subscription,
   * atomically with `cursors` when given. Rejects ALREADY_EXISTS when creating a taken name, NOT_FOUND
   * when replacing an absent one, VERSION_CONFLICT when the stored version differs. Durable on resolve.
   */
  put(
    record: SubscriptionRecord,
    expectedVersion: number,
    cursors?: readonly CursorSnapshot[],
  ): Promise<void>;
  /** Removes a subscription with its cursors and dead letters; resolves false if it was absent. */
  delete(name: string): Promise<boolean>;
  /**
   * Replaces the cursors of several subscriptions in one atomic write; names not stored are ignored.
   * `fences` gives, per name, the fencing token of the lease the committer holds (cluster mode, ADR
   * 0014): a name whose token is not its lease's current one is refused, nothing of it is written, and
   * it is in the resolved list (the committer lost the lease). Names without a token are written
   * unfenced. An adapter without leases (embedded: one process) accepts every token and resolves [].
   */
  saveCursors(
    entries: ReadonlyMap<string, readonly CursorSnapshot[]>,
    fences?: ReadonlyMap<string, number>,
  ): Promise<string[]>;
  /** The cursors of a subscription (empty when none), by partition ascending. */
  loadCursors(name: string): Promise<CursorSnapshot[]>;
  /**
   * Stores dead letters (a letter at the same position replaces the stored one). Ignored for unknown
   * names. `fence` is the fencing token of the lease the writer holds (cluster mode, ADR 0015), as in
   * `saveCursors`: when it is not the lease's current token nothing is written and it resolves false
   * (the writer lost the lease); otherwise true. An adapter without leases accepts every token.
   */
  addDeadLetters(name: string, letters: readonly DeadLetter[], fence?: number): Promise<boolean>;
  /** Dead letters by (partition, offset) ascending, strictly after `after` when given, at most `limit`. */
  listDeadLetters(
    name: string,
    opts: { after?: { partition: number; offset: number }; limit: number },
  ): Promise<DeadLetter[]>;
  /**
   * Removes the given dead letters (absent ones are ignored); resolves how many were removed, or false
   * when `fence` (as in `addDeadLetters`) is stale: then nothing is removed.
   */
  removeDeadLetters(
    name: string,
    at: readonly { partition: number; offset: number }[],
    fence?: number,
  ): Promise<number | false>;
  /** Removes every dead letter of a subscription; resolves how many were removed. */
  purgeDeadLetters(name: string): Promise<number>;
  /** Flushes and releases resources. Idempotent. */
  close(): Promise<void>;
}

/** How a conditional `put` ended, as every adapter decides it inside its transaction. */
export type PutOutcome = 'ok' | 'exists' | 'absent' | 'conflict';

/** Throws the error a `put` outcome stands for (nothing for 'ok'), worded the same by every adapter. */
export function throwPutOutcome(name: string, expectedVersion: number, outcome: PutOutcome): void {
  if (outcome === 'exists')
    throw new CdsError('ALREADY_EXISTS', `a subscription named '${name}' already exists`);
  if (outcome === 'absent') throw new CdsError('NOT_FOUND', `no subscription '${name}'`);
  if (outcome === 'conflict')
    throw new CdsError('VERSION_CONFLICT', `subscription '${name}' changed since version ${expectedVersion}`);
}
