/**
 * The cluster RuleStore (port: src/state/rules-port.ts; tables in migrations/0004_rules.sql):
 * immutable rule set versions and the active pointer, shared by every instance. Writes (create,
 * activate) run one at a time across instances under a transaction-scoped advisory lock, so that
 * "latest + 1" and "the active version is still X" are checked and written atomically. Moving the
 * pointer notifies on the change feed's channel (a trigger), so every instance reloads the set.
 * Every write resolves after COMMIT.
 */
import type pg from 'pg';
import {
  throwActivateOutcome,
  throwCreateOutcome,
  type ActivePointer,
  type RuleSetRecord,
  type RuleStore,
} from '../../state/rules-port.ts';
import { openPool, type PoolOptions } from './connect.ts';
import { query, transaction } from './pool.ts';

/** The advisory lock key of rule set writes (an arbitrary constant: "cds-rule" in ASCII). */
export const RULES_LOCK_KEY = 0x6364_732d_7275_6c65n;

interface RuleSetRow {
  version: number;
  rule_set: Record<string, unknown>;
  created_at: string;
  created_by: string;
  comment: string | null;
}

const COLUMNS = 'version, rule_set, created_at, created_by, comment';

const toRecord = (r: RuleSetRow): RuleSetRecord => ({
  version: r.version,
  ruleSet: r.rule_set,
  createdAt: r.created_at,
  createdBy: r.created_by,
  ...(r.comment === null ? {} : { comment: r.comment }),
});

const UPSERT_ACTIVE = `INSERT INTO cds_rule_active (id, version, activated_at, activated_by) VALUES (1, $1, $2, $3)
  ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, activated_at = EXCLUDED.activated_at,
    activated_by = EXCLUDED.activated_by`;

/** RuleStore on PostgreSQL. */
export class PostgresRuleStore implements RuleStore {
  #closing: Promise<void> | undefined;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and migrates like PostgresStateStore.open (same errors); this store owns its pool. */
  static async open(url: string, opts: PoolOptions = {}): Promise<PostgresRuleStore> {
    return new PostgresRuleStore(await openPool(url, { poolSize: 2, ...opts }));
  }

  async latest(): Promise<number> {
    const [r] = await query<{ v: number }>(
      this.pool,
      'reading the latest rule set version',
      'SELECT COALESCE(max(version), 0) AS v FROM cds_rule_sets',
    );
    return r?.v ?? 0;
  }

  async get(version: number): Promise<RuleSetRecord | undefined> {
    const [r] = await query<RuleSetRow>(
      this.pool,
      `reading rule set version ${version}`,
      `SELECT ${COLUMNS} FROM cds_rule_sets WHERE version = $1`,
      [version],
    );
    return r === undefined ? undefined : toRecord(r);
  }

  async list(opts: { before?: number; limit: number }): Promise<RuleSetRecord[]> {
    if (opts.limit <= 0) return [];
    const rows = await query<RuleSetRow>(
      this.pool,
      'listing rule set versions',
      `SELECT ${COLUMNS} FROM cds_rule_sets WHERE version < $1 ORDER BY version DESC LIMIT $2`,
      [opts.before ?? 2_147_483_647, opts.limit],
    );
    return rows.map(toRecord);
  }

  async active(): Promise<ActivePointer | undefined> {
    const [r] = await query<{ version: number; activated_at: string; activated_by: string }>(
      this.pool,
      'reading the active rule set',
      'SELECT version, activated_at, activated_by FROM cds_rule_active WHERE id = 1',
    );
    return r === undefined
      ? undefined
      : { version: r.version, activatedAt: r.activated_at, activatedBy: r.activated_by };
  }

  async create(record: RuleSetRecord, activate?: ActivePointer): Promise<void> {
    const outcome = await transaction(this.pool, `storing rule set version ${record.version}`, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [RULES_LOCK_KEY.toString()]);
      const { rows } = await c.query<{ v: number }>(
        'SELECT COALESCE(max(version), 0) AS v FROM cds_rule_sets',
      );
      const latest = rows[0]?.v ?? 0;
      if (record.version !== latest + 1) return latest;
      await c.query(`INSERT INTO cds_rule_sets (${COLUMNS}) VALUES ($1, $2, $3, $4, $5)`, [
        record.version,
        JSON.stringify(record.ruleSet),
        record.createdAt,
        record.createdBy,
        record.comment ?? null,
      ]);
      if (activate !== undefined)
        await c.query(UPSERT_ACTIVE, [activate.version, activate.activatedAt, activate.activatedBy]);
      return 'ok' as const;
    });
    throwCreateOutcome(record.version, outcome);
  }

  async activate(pointer: ActivePointer, expectedActive?: number): Promise<void> {
    const outcome = await transaction(
      this.pool,
      `activating rule set version ${pointer.version}`,
      async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [RULES_LOCK_KEY.toString()]);
        if (pointer.version !== 0) {
          const found = await c.query('SELECT 1 FROM cds_rule_sets WHERE version = $1', [pointer.version]);
          if (found.rows.length === 0) return 'absent' as const;
        }
        const cur = await c.query<{ version: number }>('SELECT version FROM cds_rule_active WHERE id = 1');
        const active = cur.rows[0]?.version ?? 0;
        if (expectedActive !== undefined && active !== expectedActive) return active;
        await c.query(UPSERT_ACTIVE, [pointer.version, pointer.activatedAt, pointer.activatedBy]);
        return 'ok' as const;
      },
    );
    throwActivateOutcome(pointer.version, expectedActive, outcome);
  }

  close(): Promise<void> {
    this.#closing ??= this.pool.end().catch(() => {});
    return this.#closing;
  }
}
