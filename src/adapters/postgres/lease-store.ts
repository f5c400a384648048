/**
 * The cluster LeaseStore (port: src/state/leases-port.ts; tables in migrations/0005_cluster.sql):
 * members with an expiry, one lease row per subscription with a fencing token from one sequence.
 * Every expiry is computed and compared with the server's clock_timestamp(), never an instance's.
 * Statements that lock several lease rows lock them in name order (as cursor commits do, FOR SHARE),
 * so that renewals, takeovers and commits of several instances cannot deadlock. This store owns a
 * small pool of its own, so that renewals never wait behind the state store's index writes.
 */
import type pg from 'pg';
import type { LeaseStore, LeaseView, Member } from '../../state/leases-port.ts';
import { openPool, type PoolOptions } from './connect.ts';
import { query } from './pool.ts';

const TTL = `clock_timestamp() + $3::integer * interval '1 millisecond'`;

/** Takes free (expired) leases, or the owner's own; a new token from the sequence for each. */
const ACQUIRE = `INSERT INTO cds_leases AS l (name, owner, token, acquired_at, expires_at)
  SELECT n, $1, nextval('cds_lease_tokens'), clock_timestamp(), ${TTL}
  FROM unnest($2::text[]) AS n
  WHERE EXISTS (SELECT 1 FROM cds_subscriptions s WHERE s.name = n)
  ORDER BY n COLLATE "C"
  ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, token = EXCLUDED.token,
    acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
  WHERE l.expires_at <= clock_timestamp() OR l.owner = EXCLUDED.owner
  RETURNING name, token`;

/** Extends the owner's unexpired leases that still carry its tokens (rows locked in name order). */
const RENEW = `UPDATE cds_leases l SET expires_at = ${TTL}
  FROM (SELECT c.name FROM cds_leases c
        JOIN unnest($2::text[], $4::bigint[]) AS h(name, token) ON h.name = c.name AND h.token = c.token
        WHERE c.owner = $1 AND c.expires_at > clock_timestamp()
        ORDER BY c.name FOR NO KEY UPDATE) AS x
  WHERE l.name = x.name
  RETURNING l.name`;

const RELEASE = `UPDATE cds_leases l SET expires_at = clock_timestamp()
  FROM (SELECT c.name FROM cds_leases c
        JOIN unnest($2::text[], $3::bigint[]) AS h(name, token) ON h.name = c.name AND h.token = c.token
        WHERE c.owner = $1 AND c.expires_at > clock_timestamp()
        ORDER BY c.name FOR NO KEY UPDATE) AS x
  WHERE l.name = x.name`;

const LEASES = `SELECT s.name, l.token,
    CASE WHEN l.expires_at > clock_timestamp() THEN l.owner END AS owner,
    m.url, m.grpc
  FROM cds_subscriptions s
  LEFT JOIN cds_leases l ON l.name = s.name
  LEFT JOIN cds_members m ON m.id = l.owner AND m.expires_at > clock_timestamp()
  WHERE $1::text[] IS NULL OR s.name = ANY($1::text[])
  ORDER BY s.name`;

interface LeaseRow {
  name: string;
  token: number | null;
  owner: string | null;
  url: string | null;
  grpc: string | null;
}

/** LeaseStore on PostgreSQL. */
export class PostgresLeaseStore implements LeaseStore {
  #closing: Promise<void> | undefined;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and migrates like PostgresStateStore.open (same errors); this store owns its pool. */
  static async open(url: string, opts: PoolOptions = {}): Promise<PostgresLeaseStore> {
    return new PostgresLeaseStore(await openPool(url, { poolSize: 3, ...opts }));
  }

  async heartbeat(member: Member, ttlMs: number): Promise<string[]> {
    // One statement: the upsert, a prune of members gone for an hour, and the live ones (the snapshot
    // does not see the upsert, hence the union with its own row).
    const rows = await query<{ id: string }>(
      this.pool,
      'registering this instance',
      `WITH up AS (
         INSERT INTO cds_members (id, url, grpc, expires_at) VALUES ($1, $2, $4, ${TTL})
         ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, grpc = EXCLUDED.grpc, expires_at = EXCLUDED.expires_at
         RETURNING id
       ), gone AS (
         DELETE FROM cds_members WHERE expires_at < clock_timestamp() - interval '1 hour' AND id <> $1
       )
       SELECT id FROM cds_members WHERE expires_at > clock_timestamp() UNION SELECT id FROM up ORDER BY id`,
      [member.id, member.url ?? null, Math.ceil(ttlMs), member.grpc ?? null],
    );
    return rows.map((r) => r.id);
  }

  async leave(id: string): Promise<void> {
    await query(this.pool, 'removing this instance', 'DELETE FROM cds_members WHERE id = $1', [id]);
  }

  async acquire(owner: string, names: readonly string[], ttlMs: number): Promise<Map<string, number>> {
    if (names.length === 0) return new Map();
    const rows = await query<{ name: string; token: number }>(this.pool, 'acquiring leases', ACQUIRE, [
      owner,
      [...new Set(names)],
      Math.ceil(ttlMs),
    ]);
    return new Map(rows.map((r) => [r.name, r.token]));
  }

  async renew(owner: string, held: ReadonlyMap<string, number>, ttlMs: number): Promise<Set<string>> {
    if (held.size === 0) return new Set();
    const rows = await query<{ name: string }>(this.pool, 'renewing leases', RENEW, [
      owner,
      [...held.keys()],
      Math.ceil(ttlMs),
      [...held.values()],
    ]);
    return new Set(rows.map((r) => r.name));
  }

  async release(owner: string, held: ReadonlyMap<string, number>): Promise<void> {
    if (held.size === 0) return;
    await query(this.pool, 'releasing leases', RELEASE, [owner, [...held.keys()], [...held.values()]]);
  }

  async leases(names?: readonly string[]): Promise<LeaseView[]> {
    const rows = await query<LeaseRow>(this.pool, 'reading leases', LEASES, [names ?? null]);
    return rows.map((r) => ({
      name: r.name,
      owner: r.owner,
      token: r.token ?? 0,
      ...(r.owner === null || (r.url === null && r.grpc === null)
        ? {}
        : {
            address: {
              ...(r.url === null ? {} : { url: r.url }),
              ...(r.grpc === null ? {} : { grpc: r.grpc }),
            },
          }),
    }));
  }

  close(): Promise<void> {
    this.#closing ??= this.pool.end().catch(() => {});
    return this.#closing;
  }
}
