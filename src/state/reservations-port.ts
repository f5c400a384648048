/**
 * The ReservationStore port (DESIGN 6; ADR 0015): idempotent publish across the instances of a
 * cluster. Before appending a new revision, an instance reserves its decisionId+revision in the shared
 * store and confirms it with its offset after the append; a reservation lives until the decision index
 * holds the revision (or the append failed).
 * Only a shared store implements it (PostgreSQL); in embedded mode one process decides alone.
 */

/** A decisionId+revision reserved by an instance before its append. */
export interface Reservation {
  readonly decisionId: string;
  readonly revision: number;
  /** The member id of the instance that reserved it. */
  readonly owner: string;
  /** The partition the append goes to, and its tail when reserving (the append lands at or after it). */
  readonly partition: number;
  readonly fromOffset: number;
  /** The record's timestamp (receivedAt, the owner's clock). */
  readonly receivedAt: number;
  /** Where the record is in the log, once known (absent: not known to be appended). */
  readonly offset?: number;
}

/** A reservation another instance holds, as a publisher sees it. */
export interface ForeignReservation extends Reservation {
  /** Its owner is not a live member and it is older than the grace period: it may be reconciled. */
  readonly stale: boolean;
}

/** What reserving answered. */
export type ReserveOutcome = 'ok' | 'changed';

/** Reservations of decisionId+revision. */
export interface ReservationStore {
  /**
   * Reservations of these ids held by owners other than `owner`, by id. A reservation is `stale` when
   * its owner is no live member and it was made more than `graceMs` ago.
   */
  find(ids: readonly string[], owner: string, graceMs: number): Promise<Map<string, ForeignReservation[]>>;
  /**
   * Reserves `items` for `owner`, all or none, serialized per decisionId across instances: 'changed'
   * (nothing reserved) when, for one of their ids, the decision index or another owner's reservation
   * holds a revision that `known` does not list for that id (the caller decides again).
   */
  reserve(
    owner: string,
    items: readonly Reservation[],
    known: ReadonlyMap<string, readonly number[]>,
  ): Promise<ReserveOutcome>;
  /** Removes reservations (their revision is indexed, or their append failed). Absent ones are ignored. */
  release(items: readonly { decisionId: string; revision: number }[]): Promise<void>;
  /**
   * Records where reservations' records are in the log (after the append, or where reconciliation
   * found them): another instance then answers a duplicate from the log without waiting for the index.
   */
  confirm(items: readonly { decisionId: string; revision: number; offset: number }[]): Promise<void>;
  /** Reservations without an offset whose owner is no live member, made more than `graceMs` ago. */
  stale(graceMs: number): Promise<Reservation[]>;
  close(): Promise<void>;
}
