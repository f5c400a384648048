/**
 * The cluster RetentionPolicyStore (port: src/state/retention-port.ts; table in
 * migrations/0006_retention.sql): policies shared by every instance. Conditional writes test the
 * stored version in the same statement, so concurrent writers from several instances
 * conflict instead of overwriting each other; every change notifies the change feed's channel (a
 * trigger), so every instance reloads the policies. Every write resolves after COMMIT.
 */
import type pg from 'pg';
import {
  throwRetentionOutcome,
  type RetentionPolicyRecord,
  type RetentionPolicyStore,
  type RetentionPutOutcome,
} from '../../state/retention-port.ts';
import { openPool, type PoolOptions } from './connect.ts';
import { query, transaction } from './pool.ts';

/** RetentionPolicyStore on PostgreSQL. */
export class PostgresRetentionStore implements RetentionPolicyStore {
  #closing: Promise<void> | undefined;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and migrates like PostgresStateStore.open (same errors); this store owns its pool. */
  static async open(url: string, opts: PoolOptions = {}): Promise<PostgresRetentionStore> {
    return new PostgresRetentionStore(await openPool(url, { poolSize: 2, ...opts }));
  }

  async list(): Promise<RetentionPolicyRecord[]> {
    const rows = await query<{ policy: RetentionPolicyRecord }>(
      this.pool,
      'listing retention policies',
      'SELECT policy FROM cds_retention_policies ORDER BY name',
    );
    return rows.map((r) => r.policy);
  }

  async get(name: string): Promise<RetentionPolicyRecord | undefined> {
    const [r] = await query<{ policy: RetentionPolicyRecord }>(
      this.pool,
      `reading retention policy '${name}'`,
      'SELECT policy FROM cds_retention_policies WHERE name = $1',
      [name],
    );
    return r?.policy;
  }

  async put(record: RetentionPolicyRecord): Promise<void> {
    const outcome = await transaction(
      this.pool,
      `storing retention policy '${record.name}'`,
      async (c): Promise<RetentionPutOutcome> => {
        if (record.version === 1) {
          // A create races only on the key: the INSERT that loses inserts nothing.
          const ins = await c.query(
            `INSERT INTO cds_retention_policies (name, version, policy) VALUES ($1, 1, $2)
             ON CONFLICT (name) DO NOTHING`,
            [record.name, JSON.stringify(record)],
          );
          return ins.rowCount === 1 ? 'ok' : 'exists';
        }
        const upd = await c.query(
          'UPDATE cds_retention_policies SET version = $2, policy = $3 WHERE name = $1 AND version = $2 - 1',
          [record.name, record.version, JSON.stringify(record)],
        );
        if (upd.rowCount === 1) return 'ok';
        const cur = await c.query<{ version: number }>(
          'SELECT version FROM cds_retention_policies WHERE name = $1',
          [record.name],
        );
        return { stored: cur.rows[0]?.version ?? 0 };
      },
    );
    throwRetentionOutcome(record.name, record.version - 1, outcome);
  }

  async delete(name: string, expectedVersion?: number): Promise<boolean> {
    const outcome = await transaction(
      this.pool,
      `deleting retention policy '${name}'`,
      async (c): Promise<RetentionPutOutcome | 'absent'> => {
        const del = await c.query<{ version: number }>(
          'DELETE FROM cds_retention_policies WHERE name = $1 AND ($2::integer IS NULL OR version = $2) RETURNING version',
          [name, expectedVersion ?? null],
        );
        if (del.rowCount === 1) return 'ok';
        if (expectedVersion === undefined) return 'absent';
        const cur = await c.query<{ version: number }>(
          'SELECT version FROM cds_retention_policies WHERE name = $1',
          [name],
        );
        return { stored: cur.rows[0]?.version ?? 0 };
      },
    );
    if (outcome === 'absent') return false;
    throwRetentionOutcome(name, expectedVersion ?? 0, outcome);
    return true;
  }

  close(): Promise<void> {
    this.#closing ??= this.pool.end().catch(() => {});
    return this.#closing;
  }
}
