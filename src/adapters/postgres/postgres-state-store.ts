/**
 * The cluster StateStore (DESIGN 2, 6): PostgreSQL through a `pg.Pool`, shared by every cds
 * instance. Opening checks the server, the credentials and the schema version, and applies pending
 * migrations under an advisory lock (migrations.ts). Every write is one transaction; a promise that
 * writes resolves after COMMIT, i.e. durably (with the server's fsync and synchronous_commit).
 */
import pg from 'pg';
import { CdsError } from '../../errors/index.ts';
import type { AuditStore, MetaStore, PrincipalStore, StateStore } from '../../state/port.ts';
import { PostgresDecisionIndex } from './decision-index.ts';
import { mapConnectError, mapPgError } from './errors.ts';
import { loadMigrations, migrate, type Migration } from './migrations.ts';
import { ignore } from './pool.ts';
import { PgAudit, PgMeta, PgPrincipals } from './stores.ts';

/** Options of {@link PostgresStateStore.open}. */
export interface PostgresStateStoreOptions {
  /** Most connections of this instance's pool. Default 10. */
  readonly poolSize?: number;
  /** `application_name` of the connections, as pg_stat_activity shows it. Default `cds`. */
  readonly applicationName?: string;
  /** Longest wait for a connection, in ms. Default 10,000. */
  readonly connectTimeoutMs?: number;
  /** Migrations to apply instead of the bundled ones (tests only). */
  readonly migrations?: readonly Migration[];
}

// bigint columns (received_at, offset, seq, counts) as numbers: every value we store is below 2^53.
const TYPES = new pg.TypeOverrides();
TYPES.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

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
    const where = describeUrl(url);
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      application_name: opts.applicationName ?? 'cds',
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
      types: TYPES,
    });
    // An idle connection that breaks emits here; the next query on the pool reports it instead.
    pool.on('error', ignore);
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (e) {
      await pool.end().catch(() => {});
      throw mapConnectError(e, where);
    }
    client.on('error', ignore);
    try {
      await migrate(client, opts.migrations ?? loadMigrations());
      client.removeListener('error', ignore);
      client.release();
    } catch (e) {
      client.removeListener('error', ignore);
      client.release(true);
      await pool.end().catch(() => {});
      throw mapPgError(e, `migrating the schema at ${where}`);
    }
    return new PostgresStateStore(pool);
  }

  close(): Promise<void> {
    this.closing ??= this.pool.end().catch(() => {});
    return this.closing;
  }
}

/** `host:port/database` of a URL (never its password), or CONFIG_INVALID if it is not a postgres URL. */
function describeUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    throw new CdsError(
      'CONFIG_INVALID',
      'the PostgreSQL URL is malformed: expected postgres://user:password@host:port/database',
      {
        cause,
      },
    );
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')
    throw new CdsError(
      'CONFIG_INVALID',
      `the PostgreSQL URL has scheme '${u.protocol}': expected postgres://user:password@host:port/database`,
    );
  if (u.hostname === '')
    throw new CdsError(
      'CONFIG_INVALID',
      'the PostgreSQL URL names no host: expected postgres://user:password@host:port/database',
    );
  return `${u.hostname}:${u.port === '' ? '5432' : u.port}${u.pathname}`;
}
