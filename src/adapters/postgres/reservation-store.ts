/**
 * The cluster ReservationStore (port: src/state/reservations-port.ts; table cds_publish_reservations
 * of migrations/0005_cluster.sql). Reserving takes a transaction-scoped advisory lock per decisionId
 * (in one order: ascending lock keys), then checks, under it, that neither the decision index nor
 * another owner's reservation holds a revision the caller did not know of, then inserts. The check
 * reads the index and the reservations in one statement: a reservation is removed only after its
 * revision is indexed, so one of the two always shows a revision that exists.
 */
import type pg from 'pg';
import type {
  ForeignReservation,
  Reservation,
  ReservationStore,
  ReserveOutcome,
} from '../../state/reservations-port.ts';
import { openPool, type PoolOptions } from './connect.ts';
import { query, transaction } from './pool.ts';

interface Row {
  decision_id: string;
  revision: number;
  owner: string;
  partition: number;
  from_offset: number;
  received_at: number;
  offset: number | null;
  stale?: boolean;
}

const toReservation = (r: Row): Reservation => ({
  decisionId: r.decision_id,
  revision: r.revision,
  owner: r.owner,
  partition: r.partition,
  fromOffset: r.from_offset,
  receivedAt: r.received_at,
  ...(r.offset === null ? {} : { offset: r.offset }),
});

const COLUMNS = 'r.decision_id, r.revision, r.owner, r.partition, r.from_offset, r.received_at, r."offset"';
/** Whether a reservation's owner is gone (no live member) and the reservation older than $GRACE ms. */
const STALE = (grace: string) => `(NOT EXISTS (SELECT 1 FROM cds_members m WHERE m.id = r.owner
    AND m.expires_at > clock_timestamp()) AND r.reserved_at < clock_timestamp() - ${grace}::integer * interval '1 millisecond')`;

/** ReservationStore on PostgreSQL. */
export class PostgresReservationStore implements ReservationStore {
  #closing: Promise<void> | undefined;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and migrates like PostgresStateStore.open (same errors); this store owns its pool. */
  static async open(url: string, opts: PoolOptions = {}): Promise<PostgresReservationStore> {
    return new PostgresReservationStore(await openPool(url, { poolSize: 4, ...opts }));
  }

  async find(
    ids: readonly string[],
    owner: string,
    graceMs: number,
  ): Promise<Map<string, ForeignReservation[]>> {
    const out = new Map<string, ForeignReservation[]>();
    if (ids.length === 0) return out;
    const rows = await query<Row>(
      this.pool,
      'reading publish reservations',
      `SELECT ${COLUMNS}, ${STALE('$3')} AS stale FROM cds_publish_reservations r
       WHERE r.decision_id = ANY($1::text[]) AND r.owner <> $2 ORDER BY r.decision_id, r.revision`,
      [[...new Set(ids)], owner, Math.ceil(graceMs)],
    );
    for (const r of rows) {
      let l = out.get(r.decision_id);
      if (l === undefined) out.set(r.decision_id, (l = []));
      l.push({ ...toReservation(r), stale: r.stale === true });
    }
    return out;
  }

  async reserve(
    owner: string,
    items: readonly Reservation[],
    known: ReadonlyMap<string, readonly number[]>,
  ): Promise<ReserveOutcome> {
    if (items.length === 0) return 'ok';
    const ids = [...new Set(items.map((i) => i.decisionId))];
    return transaction(this.pool, 'reserving decision revisions', async (c) => {
      await c.query(
        `SELECT pg_advisory_xact_lock(k) FROM (
           SELECT DISTINCT hashtextextended(id, 7234) AS k FROM unnest($1::text[]) AS id ORDER BY k) x`,
        [ids],
      );
      const { rows } = await c.query<{ decision_id: string; revision: number }>(
        `SELECT decision_id, revision FROM cds_decisions WHERE decision_id = ANY($1::text[])
         UNION SELECT decision_id, revision FROM cds_publish_reservations
         WHERE decision_id = ANY($1::text[]) AND owner <> $2`,
        [ids, owner],
      );
      for (const r of rows) if (!known.get(r.decision_id)?.includes(r.revision)) return 'changed' as const;
      await c.query(
        `INSERT INTO cds_publish_reservations (decision_id, revision, owner, partition, from_offset, received_at)
         SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::integer[], $5::bigint[], $6::bigint[])
         ON CONFLICT (decision_id, revision) DO UPDATE SET owner = EXCLUDED.owner, partition = EXCLUDED.partition,
           from_offset = EXCLUDED.from_offset, received_at = EXCLUDED.received_at, "offset" = NULL,
           reserved_at = clock_timestamp()`,
        [
          items.map((i) => i.decisionId),
          items.map((i) => i.revision),
          items.map(() => owner),
          items.map((i) => i.partition),
          items.map((i) => i.fromOffset),
          items.map((i) => i.receivedAt),
        ],
      );
      return 'ok' as const;
    });
  }

  async release(items: readonly { decisionId: string; revision: number }[]): Promise<void> {
    if (items.length === 0) return;
    await query(
      this.pool,
      'releasing publish reservations',
      `DELETE FROM cds_publish_reservations
       WHERE (decision_id, revision) IN (SELECT * FROM unnest($1::text[], $2::integer[]))`,
      [items.map((i) => i.decisionId), items.map((i) => i.revision)],
    );
  }

  async confirm(items: readonly { decisionId: string; revision: number; offset: number }[]): Promise<void> {
    if (items.length === 0) return;
    await query(
      this.pool,
      'confirming publish reservations',
      `UPDATE cds_publish_reservations r SET "offset" = c.o
       FROM unnest($1::text[], $2::integer[], $3::bigint[]) AS c(id, rev, o)
       WHERE r.decision_id = c.id AND r.revision = c.rev`,
      [items.map((i) => i.decisionId), items.map((i) => i.revision), items.map((i) => i.offset)],
    );
  }

  async stale(graceMs: number): Promise<Reservation[]> {
    const rows = await query<Row>(
      this.pool,
      'reading stale publish reservations',
      `SELECT ${COLUMNS} FROM cds_publish_reservations r WHERE r."offset" IS NULL AND ${STALE('$1')}
       ORDER BY r.partition, r.from_offset`,
      [Math.ceil(graceMs)],
    );
    return rows.map(toReservation);
  }

  close(): Promise<void> {
    this.#closing ??= this.pool.end().catch(() => {});
    return this.#closing;
  }
}
