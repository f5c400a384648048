/**
 * The RetentionPolicyStore port (DESIGN 5; ADR 0017): the retention policies of the log, one record
 * per policy name, each with a version that grows by one on every change. Embedded mode implements it
 * on its own LMDB environment; every adapter passes ./retention-contract.ts unchanged.
 */
import { CdsError } from '../errors/index.ts';

/** What a policy does when retention reaches a record a durable subscription has not acknowledged. */
export type OnUnacknowledged = 'wait' | 'drop';

/** The limits of one policy (validated by the retention module before they are stored). */
export interface RetentionLimits {
  /** Topic pattern (`*` one token, `>` the rest) whose topics the policy governs. */
  readonly pattern: string;
  /** Records received longer ago than this (ms) may go. */
  readonly maxAgeMs?: number;
  /** Records may go once the newer records of the policy amount to this many payload bytes. */
  readonly maxBytes?: number;
  /** Records may go once the policy has this many newer records. */
  readonly maxCount?: number;
  readonly onUnacknowledged: OnUnacknowledged;
}

/** One stored policy. */
export interface RetentionPolicyRecord extends RetentionLimits {
  /** Unique name (the identifier in the API and the `policy` label of the metrics). */
  readonly name: string;
  /** 1 at creation, +1 on every change. */
  readonly version: number;
  /** ISO 8601. */
  readonly createdAt: string;
  /** ISO 8601. */
  readonly updatedAt: string;
  /** Principal id of the last change's author. */
  readonly updatedBy: string;
}

/** Durable retention policies. */
export interface RetentionPolicyStore {
  /** Every policy, by name ascending. */
  list(): Promise<RetentionPolicyRecord[]>;
  /** One policy, or undefined. */
  get(name: string): Promise<RetentionPolicyRecord | undefined>;
  /**
   * Creates (record.version 1, no policy of that name stored) or replaces (record.version = the stored
   * version + 1) a policy atomically. Rejects VERSION_CONFLICT when the stored version is not
   * record.version - 1 (ALREADY_EXISTS when creating a taken name). Durable on resolve.
   */
  put(record: RetentionPolicyRecord): Promise<void>;
  /**
   * Removes a policy; resolves false when it was absent. With `expectedVersion`, rejects
   * VERSION_CONFLICT (and removes nothing) when the stored version differs.
   */
  delete(name: string, expectedVersion?: number): Promise<boolean>;
  /** Flushes and releases resources. Idempotent. */
  close(): Promise<void>;
}

/** How a conditional write ended, as every adapter decides it inside its transaction. */
export type RetentionPutOutcome = 'ok' | 'exists' | { readonly stored: number };

/** Throws the error a `put` or `delete` outcome stands for (nothing for 'ok'), worded the same by every adapter. */
export function throwRetentionOutcome(name: string, version: number, outcome: RetentionPutOutcome): void {
  if (outcome === 'ok') return;
  if (outcome === 'exists')
    throw new CdsError('ALREADY_EXISTS', `a retention policy named '${name}' already exists`);
  throw new CdsError(
    'VERSION_CONFLICT',
    outcome.stored === 0
      ? `no retention policy '${name}' is stored (version ${version} expected)`
      : `retention policy '${name}' is at version ${outcome.stored}, not ${version}`,
    { details: { version: outcome.stored } },
  );
}
