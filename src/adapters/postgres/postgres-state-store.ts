/**
 * The cluster StateStore (DESIGN 2, 6): PostgreSQL through a `pg.Pool`, shared by every cds
 * instance. Opening checks the server, the credentials and the schema version, and applies pending
 * migrations under an advisory lock (migrations.ts). Every write is one transaction; a promise that
 * writes resolves after COMMIT, i.e. durably (with the server's fsync and synchronous_commit).
 */
import type pg from 'pg';
import type { AuditStore, MetaStore, PrincipalStore, StateStore } from '../../state/port.ts';
import { PostgresDecisionIndex } from './decision-index.ts';
import { openPool, type PoolOptions } from './connect.ts';
import { PgAudit, PgMeta, PgPrincipals } from './stores.ts';

/** Options of {@link PostgresStateStore.open}. */
export type PostgresStateStoreOptions = PoolOptions;

/** StateStore on PostgreSQL. */
export class PostgresStateStore implements StateStore {
  readonly principals: PrincipalStore;
  readonly audit: AuditStore;
  readonly decisions: PostgresDecisionIndex;
  readonly meta: MetaStore;
  private closing: Promise<void> | undefined;

  private constructor(private readonly pool: pg.Pool) {
    this.principals = new PgPrincipals(pool);
    this.audit = new PgAudit(pool);
    this.decisions = new PostgresDecisionIndex(pool);
    this.meta = new PgMeta(pool);
  }

  /**
   * Connects to `url` (`postgres://user:password@host:port/database`), checks the schema version and
   * applies pending migrations. Rejects CONFIG_INVALID for a malformed URL, refused credentials, a
   * missing database, or a schema this build cannot run on (newer, or an edited migration), and
   * STORAGE_UNAVAILABLE (retriable) when the server cannot be reached; nothing is migrated then.
   */
  static async open(url: string, opts: PostgresStateStoreOptions = {}): Promise<PostgresStateStore> {
    const pool = await openPool(url, opts);
    return new PostgresStateStore(pool);
  }

  close(): Promise<void> {
    this.closing ??= this.pool.end().catch(() => {});
    return this.closing;
  }
}
