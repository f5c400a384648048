/**
 * The LeaseStore port (DESIGN 6; ADR 0014): in cluster mode, which instances are alive and which one
 * dispatches each subscription, under a lease with a fencing token. Only a shared store implements it
 * (PostgreSQL); embedded mode is one process and has no leases. Contract: ./leases-contract.ts.
 *
 * Lease times are the store's clock: an expiry is compared by the store, never by an instance's
 * clock. A lease is free when it has expired (or was released, or never taken). Tokens come from one
 * sequence: every acquisition gets a token greater than every token given before, so a token is
 * monotonic per subscription and never reused (ADR 0014). `SubscriptionStore.saveCursors` refuses a
 * commit whose token is not the subscription's current one.
 */

/** Where clients reach an instance (the addresses it advertises). */
export interface MemberAddress {
  /** Base URL of its HTTP listener (REST, WebSocket, SSE), for example `http://10.0.0.5:8480`. */
  readonly url?: string;
  /** `host:port` of its gRPC listener. */
  readonly grpc?: string;
}

/** A live instance. */
export interface Member extends MemberAddress {
  readonly id: string;
}

/** The lease of one subscription as the store sees it now. */
export interface LeaseView {
  /** The subscription. */
  readonly name: string;
  /** The instance holding it, or null when it is free (expired, released, never taken). */
  readonly owner: string | null;
  /** The owner's addresses (when it is a live member). */
  readonly address?: MemberAddress;
  /** The token of the last acquisition (0 when never taken). */
  readonly token: number;
}

/** Members and subscription leases. */
export interface LeaseStore {
  /**
   * Registers or refreshes a member until `ttlMs` from now (store clock); resolves the ids of the live
   * members, this one included, ascending.
   */
  heartbeat(member: Member, ttlMs: number): Promise<string[]>;
  /** Removes a member (graceful leave). Its leases are not touched: release them first. */
  leave(id: string): Promise<void>;
  /**
   * Takes, for `owner`, the leases of `names` that are free or already `owner`'s, until `ttlMs` from
   * now; resolves the ones taken with their new tokens. Names of subscriptions that do not exist, and
   * leases held by another owner, are left out. Concurrent acquisitions of one lease: one wins.
   */
  acquire(owner: string, names: readonly string[], ttlMs: number): Promise<Map<string, number>>;
  /**
   * Extends the leases `owner` holds with exactly these tokens and that have not expired, until
   * `ttlMs` from now; resolves the names extended. A lease missing from the answer is lost (expired,
   * taken by another owner, or its subscription deleted).
   */
  renew(owner: string, held: ReadonlyMap<string, number>, ttlMs: number): Promise<Set<string>>;
  /** Frees the leases `owner` holds with these tokens at once (others may take them); tokens are kept. */
  release(owner: string, held: ReadonlyMap<string, number>): Promise<void>;
  /** Every subscription with its lease, by name ascending; or only the named one(s). */
  leases(names?: readonly string[]): Promise<LeaseView[]>;
  /** Releases resources. Idempotent. */
  close(): Promise<void>;
}
