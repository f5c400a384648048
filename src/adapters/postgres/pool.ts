/** Small helpers over `pg.Pool` shared by the stores: one transaction, one mapped query. */
import type pg from 'pg';
import { mapPgError } from './errors.ts';

/** An 'error' listener that does nothing (the failing query reports the error instead). */
export function ignore(): void {}

/** Runs `fn` in one transaction on one pooled connection; a broken connection is discarded. */
export async function transaction<T>(
  pool: pg.Pool,
  what: string,
  fn: (c: pg.PoolClient) => Promise<T>,
): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    throw mapPgError(e, what);
  }
  // A checked-out client that loses its connection emits 'error' besides failing its query; without
  // a listener that would be an uncaught exception.
  client.on('error', ignore);
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    client.removeListener('error', ignore);
    client.release();
    return out;
  } catch (e) {
    const broken = await client.query('ROLLBACK').then(
      () => false,
      () => true,
    );
    client.removeListener('error', ignore);
    client.release(broken);
    throw mapPgError(e, what);
  }
}

/** Runs one statement on the pool; errors mapped with `what` in the message. */
export async function query<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  what: string,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  try {
    return (await pool.query<R>(sql, params)).rows;
  } catch (e) {
    throw mapPgError(e, what);
  }
}
