/**
 * The cluster SubscriptionStore (port: src/state/subscriptions-port.ts; tables in
 * migrations/0002_subscriptions.sql, 0003_cursor_sets.sql). Subscriptions with versions checked
 * under a row lock, a subscription's cursor snapshots as one row of JSON text, dead letters one row
 * per position. Cursor commits are batched: `saveCursors` writes every subscription's snapshots of one engine commit in one
 * statement (one round trip, one transaction), whatever the number of subscriptions, each fenced by
 * its lease's token when given (migrations/0005, ADR 0014). Every write resolves after COMMIT.
 */
import type pg from 'pg';
import { CdsError } from '../../errors/index.ts';
import {
  throwPutOutcome,
  type CursorSnapshot,
  type DeadLetter,
  type SubscriptionRecord,
  type SubscriptionStore,
} from '../../state/subscriptions-port.ts';
import { openPool, type PoolOptions } from './connect.ts';
import { mapPgError } from './errors.ts';
import { query, transaction } from './pool.ts';

interface SubscriptionRow {
  name: string;
  version: number;
  spec: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

const toRecord = (r: SubscriptionRow): SubscriptionRecord => ({
  name: r.name,
  version: r.version,
  spec: r.spec,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/**
 * Upserts the cursor sets of several subscriptions (migrations/0003) and resolves the names refused
 * for a stale fencing token (ADR 0014): $1 names, $2 partition lists (array literals), $3 the
 * snapshots as JSON text, $4 the tokens (null: unfenced). A fenced row is written only if its lease
 * (migrations/0005) holds that token; the lease rows are locked FOR SHARE, so a takeover (which
 * changes the token) either waits for this commit or is seen by it: a stale owner's commit can never
 * land after its successor took the lease. When the new text covers every stored partition (the
 * engine always commits them all) it replaces the stored one without being parsed; otherwise the
 * stored partitions it does not cover are kept (merged in SQL). Rows and locks go in name order, so
 * that concurrent commits of several instances lock in one order.
 */
const UPSERT_CURSORS = `WITH r AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS x(name, partitions, cursors, token)
  ), held AS (
    SELECT l.name, l.token FROM cds_leases l
    WHERE l.name IN (SELECT name FROM r WHERE token IS NOT NULL)
    ORDER BY l.name FOR SHARE
  ), ok AS (
    SELECT r.* FROM r
    WHERE r.token IS NULL OR EXISTS (SELECT 1 FROM held h WHERE h.name = r.name AND h.token = r.token)
  ), up AS (
    INSERT INTO cds_subscription_cursor_sets AS c (name, partitions, cursors)
    SELECT ok.name, ok.partitions::integer[], ok.cursors FROM ok
    WHERE EXISTS (SELECT 1 FROM cds_subscriptions s WHERE s.name = ok.name)
    ORDER BY ok.name COLLATE "C"
    ON CONFLICT (name) DO UPDATE SET
      cursors = CASE WHEN c.partitions <@ EXCLUDED.partitions THEN EXCLUDED.cursors ELSE (
        SELECT json_agg(x.v ORDER BY (x.v->>'partition')::integer)::text FROM (
          SELECT v FROM json_array_elements(EXCLUDED.cursors::json) v
          UNION ALL
          SELECT v FROM json_array_elements(c.cursors::json) v
          WHERE NOT ((v->>'partition')::integer = ANY (EXCLUDED.partitions))) x) END,
      partitions = CASE WHEN c.partitions <@ EXCLUDED.partitions THEN EXCLUDED.partitions ELSE (
        SELECT array_agg(DISTINCT p ORDER BY p) FROM unnest(c.partitions || EXCLUDED.partitions) p) END
  )
  SELECT r.name FROM r WHERE r.token IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ok WHERE ok.name = r.name)`;

/**
 * The fence of one subscription's dead-letter write (ADR 0015), as a CTE `fenced(ok)` for statements
 * whose $1 is the name and $3 the token (null: unfenced): ok when unfenced or when the lease holds that
 * token. The lease row is locked FOR SHARE, as in UPSERT_CURSORS, so a takeover either waits for the
 * write or is seen by it: a stale owner's letters never land after its successor took the lease.
 */
const FENCED = `held AS (SELECT token FROM cds_leases WHERE name = $1 AND $3::bigint IS NOT NULL FOR SHARE),
  fenced AS (SELECT $3::bigint IS NULL OR EXISTS (SELECT 1 FROM held WHERE token = $3::bigint) AS ok)`;

/**
 * The parameters of UPSERT_CURSORS for some subscriptions' snapshots (snapshots by partition
 * ascending), in name order, with their fencing tokens where given.
 */
function cursorParams(
  entries: Iterable<readonly [string, readonly CursorSnapshot[]]>,
  fences?: ReadonlyMap<string, number>,
): [string[], string[], string[], (number | null)[]] {
  const names: string[] = [];
  const parts: string[] = [];
  const texts: string[] = [];
  const tokens: (number | null)[] = [];
  for (const [name, cursors] of [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const sorted = [...cursors].sort((x, y) => x.partition - y.partition);
    names.push(name);
    parts.push(`{${sorted.map((c) => c.partition).join(',')}}`);
    texts.push(JSON.stringify(sorted));
    tokens.push(fences?.get(name) ?? null);
  }
  return [names, parts, texts, tokens];
}

/** SubscriptionStore on PostgreSQL. */
export class PostgresSubscriptionStore implements SubscriptionStore {
  private closing: Promise<void> | undefined;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and migrates like PostgresStateStore.open (same errors); this store owns its pool. */
  static async open(url: string, opts: PoolOptions = {}): Promise<PostgresSubscriptionStore> {
    return new PostgresSubscriptionStore(await openPool(url, { poolSize: 4, ...opts }));
  }

  async list(): Promise<SubscriptionRecord[]> {
    const rows = await query<SubscriptionRow>(
      this.pool,
      'listing subscriptions',
      'SELECT name, version, spec, created_at, updated_at FROM cds_subscriptions ORDER BY name',
    );
    return rows.map(toRecord);
  }

  async get(name: string): Promise<SubscriptionRecord | undefined> {
    const [r] = await query<SubscriptionRow>(
      this.pool,
      'reading a subscription',
      'SELECT name, version, spec, created_at, updated_at FROM cds_subscriptions WHERE name = $1',
      [name],
    );
    return r === undefined ? undefined : toRecord(r);
  }

  async put(
    record: SubscriptionRecord,
    expectedVersion: number,
    cursors?: readonly CursorSnapshot[],
  ): Promise<void> {
    const what = `storing subscription '${record.name}'`;
    const outcome = await transaction(this.pool, what, async (c) => {
      const { rows } = await c.query<{ version: number }>(
        'SELECT version FROM cds_subscriptions WHERE name = $1 FOR UPDATE',
        [record.name],
      );
      const cur = rows[0];
      if (expectedVersion === 0 && cur !== undefined) return 'exists';
      if (expectedVersion !== 0 && cur === undefined) return 'absent';
      if (expectedVersion !== 0 && cur !== undefined && cur.version !== expectedVersion) return 'conflict';
      const values = [
        record.name,
        record.version,
        JSON.stringify(record.spec),
        record.createdAt,
        record.updatedAt,
      ];
      if (cur === undefined)
        await c.query(
          'INSERT INTO cds_subscriptions (name, version, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)',
          values,
        );
      else
        await c.query(
          'UPDATE cds_subscriptions SET version = $2, spec = $3, created_at = $4, updated_at = $5 WHERE name = $1',
          values,
        );
      if (cursors !== undefined) {
        await c.query('DELETE FROM cds_subscription_cursor_sets WHERE name = $1', [record.name]);
        if (cursors.length > 0) await c.query(UPSERT_CURSORS, cursorParams([[record.name, cursors]]));
      }
      return 'ok';
    }).catch((e: unknown) => {
      // Two instances creating the same name at once: the loser's INSERT hits the primary key.
      if (e instanceof CdsError && e.code === 'ALREADY_EXISTS') return 'exists' as const;
      throw e;
    });
    throwPutOutcome(record.name, expectedVersion, outcome);
  }

  async delete(name: string): Promise<boolean> {
    // Cursors and dead letters go with it (ON DELETE CASCADE), in the same statement.
    const rows = await query(
      this.pool,
      `deleting subscription '${name}'`,
      'DELETE FROM cds_subscriptions WHERE name = $1 RETURNING name',
      [name],
    );
    return rows.length > 0;
  }

  async saveCursors(
    entries: ReadonlyMap<string, readonly CursorSnapshot[]>,
    fences?: ReadonlyMap<string, number>,
  ): Promise<string[]> {
    if (entries.size === 0) return [];
    try {
      const { rows } = await this.pool.query<{ name: string }>(UPSERT_CURSORS, cursorParams(entries, fences));
      return rows.map((r) => r.name);
    } catch (e) {
      // 23503: a subscription deleted (by another instance) between the EXISTS and the insert; the
      // engine keeps the snapshots dirty and retries at its next commit, where EXISTS skips it.
      const mapped = mapPgError(e, 'committing cursors');
      if ((e as { code?: string }).code === '23503')
        throw new CdsError('STORAGE_UNAVAILABLE', `${mapped.message}; retry`, { cause: e });
      throw mapped;
    }
  }

  async loadCursors(name: string): Promise<CursorSnapshot[]> {
    const [r] = await query<{ cursors: string }>(
      this.pool,
      `reading the cursors of '${name}'`,
      'SELECT cursors FROM cds_subscription_cursor_sets WHERE name = $1',
      [name],
    );
    return r === undefined ? [] : (JSON.parse(r.cursors) as CursorSnapshot[]);
  }

  async addDeadLetters(name: string, letters: readonly DeadLetter[], fence?: number): Promise<boolean> {
    if (letters.length === 0) return true;
    // One row per position: a later letter at the same position replaces an earlier one (also within
    // this call), as ON CONFLICT cannot touch one row twice in a statement.
    const byPos = new Map<string, DeadLetter>();
    for (const l of letters) byPos.set(`${l.partition}:${l.offset}`, l);
    const rows = [...byPos.values()]
      .sort((a, b) => a.partition - b.partition || a.offset - b.offset)
      .map((l) => ({ partition: l.partition, offset: l.offset, letter: l }));
    const [r] = await query<{ ok: boolean }>(
      this.pool,
      `storing dead letters of '${name}'`,
      `WITH ${FENCED},
       ins AS (
         INSERT INTO cds_dead_letters (name, partition, "offset", letter)
         SELECT $1, r.partition, r."offset", r.letter
         FROM json_to_recordset($2::json) AS r(partition integer, "offset" bigint, letter json)
         WHERE (SELECT ok FROM fenced) AND EXISTS (SELECT 1 FROM cds_subscriptions s WHERE s.name = $1)
         ON CONFLICT (name, partition, "offset") DO UPDATE SET letter = EXCLUDED.letter
       )
       SELECT ok FROM fenced`,
      [name, JSON.stringify(rows), fence ?? null],
    );
    return r?.ok === true;
  }

  async listDeadLetters(
    name: string,
    opts: { after?: { partition: number; offset: number }; limit: number },
  ): Promise<DeadLetter[]> {
    const rows = await query<{ letter: DeadLetter }>(
      this.pool,
      `listing dead letters of '${name}'`,
      `SELECT letter FROM cds_dead_letters WHERE name = $1 AND (partition, "offset") > ($2, $3)
       ORDER BY partition, "offset" LIMIT $4`,
      [name, opts.after?.partition ?? -1, opts.after?.offset ?? -1, opts.limit],
    );
    return rows.map((r) => r.letter);
  }

  async removeDeadLetters(
    name: string,
    at: readonly { partition: number; offset: number }[],
    fence?: number,
  ): Promise<number | false> {
    if (at.length === 0) return 0;
    const [r] = await query<{ ok: boolean; n: number }>(
      this.pool,
      `removing dead letters of '${name}'`,
      `WITH ${FENCED},
       del AS (
         DELETE FROM cds_dead_letters WHERE (SELECT ok FROM fenced) AND name = $1
           AND (partition, "offset") IN (SELECT * FROM unnest($2::integer[], $4::bigint[]))
         RETURNING 1
       )
       SELECT (SELECT ok FROM fenced) AS ok, (SELECT count(*) FROM del)::integer AS n`,
      [name, at.map((p) => p.partition), fence ?? null, at.map((p) => p.offset)],
    );
    return r?.ok === true ? r.n : false;
  }

  async purgeDeadLetters(name: string): Promise<number> {
    try {
      const r = await this.pool.query('DELETE FROM cds_dead_letters WHERE name = $1', [name]);
      return r.rowCount ?? 0;
    } catch (e) {
      throw mapPgError(e, `purging dead letters of '${name}'`);
    }
  }

  close(): Promise<void> {
    this.closing ??= this.pool.end().catch(() => {});
    return this.closing;
  }
}
