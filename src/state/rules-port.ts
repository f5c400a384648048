/**
 * The RuleStore port (DESIGN 4; ADR 0013): versions of routing rule sets and the pointer to the
 * active one. Versions are immutable once stored; a change is a new version. Embedded mode implements
 * it on its own LMDB environment; every adapter passes ./rules-contract.ts unchanged.
 */
import { CdsError } from '../errors/index.ts';

/** One stored version of a rule set. */
export interface RuleSetRecord {
  /** 1, 2, 3, ... in creation order (version 0 is the built-in set and is never stored). */
  readonly version: number;
  /** The rule set as JSON (validated by the routing module before it is stored; opaque to the store). */
  readonly ruleSet: Readonly<Record<string, unknown>>;
  /** ISO 8601. */
  readonly createdAt: string;
  /** Principal id of the author. */
  readonly createdBy: string;
  /** Free text given by the author. */
  readonly comment?: string;
}

/** Which version routes decisions now. */
export interface ActivePointer {
  /** A stored version, or 0 for the built-in set. */
  readonly version: number;
  /** ISO 8601. */
  readonly activatedAt: string;
  /** Principal id of whoever activated it. */
  readonly activatedBy: string;
}

/** Versions of rule sets and the active pointer. */
export interface RuleStore {
  /** The highest stored version; 0 when none is stored. */
  latest(): Promise<number>;
  /** One version, or undefined. */
  get(version: number): Promise<RuleSetRecord | undefined>;
  /** Versions strictly below `before` (all when absent), newest first, at most `limit`. */
  list(opts: { before?: number; limit: number }): Promise<RuleSetRecord[]>;
  /** The active pointer; undefined when nothing was ever activated (the built-in set routes). */
  active(): Promise<ActivePointer | undefined>;
  /**
   * Stores a new version, which must be `latest() + 1` (else VERSION_CONFLICT), and when `activate`
   * is given sets the active pointer to it in the same atomic write. Durable on resolve.
   */
  create(record: RuleSetRecord, activate?: ActivePointer): Promise<void>;
  /**
   * Sets the active pointer to a stored version (or 0). NOT_FOUND when the version is not stored;
   * VERSION_CONFLICT when `expectedActive` is given and the active version differs (an absent pointer
   * counts as 0). Durable on resolve.
   */
  activate(pointer: ActivePointer, expectedActive?: number): Promise<void>;
  /** Flushes and releases resources. Idempotent. */
  close(): Promise<void>;
}

/** Throws unless `create` succeeded; `outcome` is 'ok' or the latest stored version found instead. */
export function throwCreateOutcome(version: number, outcome: 'ok' | number): void {
  if (outcome !== 'ok')
    throw new CdsError(
      'VERSION_CONFLICT',
      `rule set version ${version} cannot be created: the latest is ${outcome}`,
    );
}

/**
 * Throws unless `activate` succeeded; `outcome` is 'ok', 'absent' (no such version) or the active
 * version found instead of `expectedActive`.
 */
export function throwActivateOutcome(
  version: number,
  expectedActive: number | undefined,
  outcome: 'ok' | 'absent' | number,
): void {
  if (outcome === 'absent') throw new CdsError('NOT_FOUND', `no rule set version ${version}`);
  if (outcome !== 'ok')
    throw new CdsError(
      'VERSION_CONFLICT',
      `the active rule set is version ${outcome}, not ${String(expectedActive)}`,
    );
}
