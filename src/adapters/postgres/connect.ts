/**
 * Opening a pool: check the URL, connect once (so that a wrong password, a missing database or an
 * unreachable server is reported at start, naming which), and bring the schema to this build's
 * newest migration under the advisory lock (migrations.ts). Every PostgreSQL adapter opens through
 * here, so each refuses a database of a newer schema version before it reads or writes anything.
 */
import pg from 'pg';
import { CdsError } from '../../errors/index.ts';
import { mapConnectError, mapPgError } from './errors.ts';
import { loadMigrations, migrate, type Migration } from './migrations.ts';
import { ignore } from './pool.ts';

/** Options of {@link openPool}. */
export interface PoolOptions {
  /** Most connections of this pool. Default 10. */
  readonly poolSize?: number;
  /** `application_name` of the connections, as pg_stat_activity shows it. Default `cds`. */
  readonly applicationName?: string;
  /** Longest wait for a connection, in ms. Default 10,000. */
  readonly connectTimeoutMs?: number;
  /** Migrations to apply instead of the bundled ones (tests only). */
  readonly migrations?: readonly Migration[];
}

// bigint columns (received_at, offset, seq, counts) as numbers: every value we store is below 2^53.
export const TYPES = new pg.TypeOverrides();
TYPES.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

/**
 * Connects to `url`, checks the schema version and applies pending migrations; resolves the pool.
 * Rejects CONFIG_INVALID for a malformed URL, refused credentials, a missing database, or a schema
 * this build cannot run on, and STORAGE_UNAVAILABLE (retriable) when the server cannot be reached;
 * nothing is migrated then.
 */
export async function openPool(url: string, opts: PoolOptions = {}): Promise<pg.Pool> {
  const where = describeUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolSize ?? 10,
    application_name: opts.applicationName ?? 'cds',
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    types: TYPES,
  });
  // An idle connection that breaks emits here; the pool drops it and the next query opens a new one.
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
  return pool;
}

/** `host:port/database` of a URL (never its password), or CONFIG_INVALID if it is not a postgres URL. */
export function describeUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    throw new CdsError(
      'CONFIG_INVALID',
      'the PostgreSQL URL is malformed: expected postgres://user:password@host:port/database',
      { cause },
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
