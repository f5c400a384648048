/**
 * The StateStore port (DESIGN 6): everything that is not the log. It is composed of small stores,
 * each documented on its own, so that an adapter implements a few narrow interfaces rather than one
 * wide one. Embedded mode implements it on LMDB in the data directory; cluster mode on PostgreSQL.
 * Every adapter passes the contract suite in ./contract.ts unchanged.
 *
 * Later issues add stores here (subscriptions and cursors, routing rules, ledger, dead letters).
 */
import type { AuditEvent, AuditRecord } from '../domain/audit.ts';

// ---------------------------------------------------------------- principals

/** Rate limits of one principal; absent fields take the configured defaults. */
export interface RateLimits {
  readonly requestsPerSecond?: number;
  readonly decisionsPerSecond?: number;
}

/** A principal authenticated by an API key. The key itself is never stored, only its hash. */
export interface Principal {
  /** Stable id (`key_` + random). */
  readonly id: string;
  /** Human name, unique among non-revoked principals is not required. */
  readonly name: string;
  /** `<action>:<pattern>` grants, as DESIGN 8 says. */
  readonly scopes: readonly string[];
  /** sha256 (hex) of the API key. */
  readonly keyHash: string;
  /** First characters of the key, to recognise it in listings. */
  readonly keyPrefix: string;
  readonly rateLimits?: RateLimits;
  /** ISO 8601. */
  readonly createdAt: string;
  /** ISO 8601 once revoked; a revoked key authenticates nothing. */
  readonly revokedAt?: string;
}

/** Principals and their API keys. */
export interface PrincipalStore {
  /** Stores a new principal; rejects ALREADY_EXISTS if the id or key hash is taken. */
  create(p: Principal): Promise<void>;
  /** The principal with this key hash (revoked ones included), or undefined. */
  findByKeyHash(keyHash: string): Promise<Principal | undefined>;
  /** The principal with this id, or undefined. */
  get(id: string): Promise<Principal | undefined>;
  /** Every principal, revoked ones included, ordered by createdAt then id. */
  list(): Promise<Principal[]>;
  /** Marks a principal revoked at `at`; returns it, or undefined if unknown. Revoking twice keeps the first time. */
  revoke(id: string, at: string): Promise<Principal | undefined>;
}

// ---------------------------------------------------------------- audit

/** The append-only, hash-chained audit trail. */
export interface AuditStore {
  /**
   * Appends events in order, chaining each to the last stored record (see domain/audit.ts), atomically
   * with respect to concurrent appends (from this or, for shared stores, any other instance). Resolves
   * with the stored records once durable.
   */
  append(events: readonly AuditEvent[]): Promise<AuditRecord[]>;
  /** Up to `limit` records with seq > `afterSeq`, ascending. */
  list(afterSeq: number, limit: number): Promise<AuditRecord[]>;
  /** The last record, or undefined when the trail is empty. */
  last(): Promise<AuditRecord | undefined>;
}

// ---------------------------------------------------------------- decision index

/** What the index keeps of one stored decision revision (queried without reading the log). */
export interface DecisionIndexEntry {
  readonly decisionId: string;
  readonly revision: number;
  readonly partition: number;
  readonly offset: number;
  /** Milliseconds since the epoch: when cds received it. */
  readonly receivedAt: number;
  readonly portfolioId: string;
  readonly strategyId: string;
  readonly symbol: string;
  readonly assetClass: string;
  readonly type: string;
  readonly verdict: string;
  readonly priority: number;
  readonly topics: readonly string[];
}

/** Where each stored revision of one decision is. */
export interface RevisionRef {
  readonly revision: number;
  readonly partition: number;
  readonly offset: number;
}

/** Filters of a decision query; all given ones must hold. */
export interface DecisionQuery {
  readonly portfolioId?: string;
  readonly strategyId?: string;
  readonly symbol?: string;
  readonly assetClass?: string;
  readonly type?: string;
  readonly verdict?: string;
  readonly minPriority?: number;
  readonly maxPriority?: number;
  /** receivedAt >= fromTime (ms). */
  readonly fromTime?: number;
  /** receivedAt < toTime (ms). */
  readonly toTime?: number;
  /** A topic pattern (domain/topics.ts) one of the decision's topics must match. */
  readonly topic?: string;
  /** Only the highest stored revision of each decision (default true). */
  readonly latestOnly?: boolean;
}

/** A point in query order: results come by (receivedAt, partition, offset), ascending or descending. */
export interface QueryMark {
  readonly receivedAt: number;
  readonly partition: number;
  readonly offset: number;
}

/** A page of query results. */
export interface QueryPage {
  readonly entries: DecisionIndexEntry[];
  /** Mark of the last entry examined; pass it back as `after` for the next page. Undefined when done. */
  readonly next?: QueryMark;
}

/** Index of stored decisions: idempotency look-ups and queries. A projection of the log. */
export interface DecisionIndex {
  /**
   * Adds entries (appended to the log, in log order) and advances the per-partition checkpoint to
   * `through` (the next offset to index, per partition) in the same atomic write. Resolves when
   * durable. Re-indexing an entry already indexed (same decisionId and revision) is a no-op.
   */
  add(entries: readonly DecisionIndexEntry[], through: Readonly<Record<number, number>>): Promise<void>;
  /** Per partition, the next log offset not yet indexed (0 for unknown partitions). */
  checkpoint(): Promise<Record<number, number>>;
  /** The stored revisions of each id (ascending by revision); ids with none are absent. */
  revisions(decisionIds: readonly string[]): Promise<Map<string, RevisionRef[]>>;
  /** One entry by id and revision (the highest when revision is undefined). */
  get(decisionId: string, revision?: number): Promise<DecisionIndexEntry | undefined>;
  /**
   * Entries matching `q`, in (receivedAt, partition, offset) order (`desc` reverses it), strictly after
   * `after`, at most `limit`, examining at most `scanLimit` entries before returning a page (possibly
   * empty, with `next` set) so that a selective query never blocks for long.
   */
  query(
    q: DecisionQuery,
    opts: { after?: QueryMark; limit: number; order: 'asc' | 'desc'; scanLimit?: number },
  ): Promise<QueryPage>;
  /** Counts of indexed entries (revisions) and distinct decisions. */
  counts(): Promise<{ revisions: number; decisions: number }>;
  /**
   * Forgets the entries of a partition below `beforeOffset`, because retention trimmed the log there
   * (ADR 0017): get, revisions and query never return them again. Durable on resolve; a bound at or
   * below one already applied changes nothing. Counts may still include forgotten entries.
   */
  trim(partition: number, beforeOffset: number): Promise<void>;
}

// ---------------------------------------------------------------- meta

/** Small named values of the service (bootstrap flags, schema version). */
export interface MetaStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
}

// ---------------------------------------------------------------- the port

/** Everything that is not the log. */
export interface StateStore {
  readonly principals: PrincipalStore;
  readonly audit: AuditStore;
  readonly decisions: DecisionIndex;
  readonly meta: MetaStore;
  /** Flushes and releases resources. Idempotent. */
  close(): Promise<void>;
}
