/**
 * The cluster LedgerStore (port: src/ledger/port.ts; table in migrations/0007_webhooks_ledger.sql):
 * the commit records of every instance in one table, so a subscription's ledger stays whole when
 * its lease moves. Cost follows cursor commits, not deliveries (ADR 0011): `append` is one INSERT of
 * all the records of a commit (column arrays expanded by `unnest`), whatever their number.
 */
import type pg from 'pg';
import type { CommitRecord, CommitRecordAt, LedgerStore } from '../../ledger/port.ts';
import { openPool, type PoolOptions } from './connect.ts';
import { query } from './pool.ts';

/** Rows removed per statement by `prune`, so that a large backlog never holds one long transaction. */
const PRUNE_BATCH = 10_000;

/** What `body` holds: the record less the columns. */
type Body = Pick<CommitRecord, 'r' | 'd' | 'x' | 'l'>;

interface Row {
  lo: number;
  t: number;
  hi: number;
  body: string;
}

function toRecord(row: Row): CommitRecord {
  const b = JSON.parse(row.body) as Body;
  return {
    t: row.t,
    lo: row.lo,
    hi: row.hi,
    r: b.r,
    d: b.d,
    x: b.x,
    ...(b.l === undefined ? {} : { l: b.l }),
  };
}

/** LedgerStore on PostgreSQL. */
export class PostgresLedgerStore implements LedgerStore {
  #closing: Promise<void> | undefined;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and migrates like PostgresStateStore.open (same errors); this store owns its pool. */
  static async open(url: string, opts: PoolOptions = {}): Promise<PostgresLedgerStore> {
    return new PostgresLedgerStore(await openPool(url, { poolSize: 2, ...opts }));
  }

  async append(records: readonly CommitRecordAt[]): Promise<void> {
    if (records.length === 0) return;
    const n = records.length;
    const subscription = new Array<string>(n);
    const partition = new Array<number>(n);
    const lo = new Array<number>(n);
    const t = new Array<number>(n);
    const hi = new Array<number>(n);
    const body = new Array<string>(n);
    records.forEach((at, i) => {
      const { r, d, x, l } = at.record;
      subscription[i] = at.subscription;
      partition[i] = at.partition;
      lo[i] = at.record.lo;
      t[i] = at.record.t;
      hi[i] = at.record.hi;
      body[i] = JSON.stringify(l === undefined ? { r, d, x } : { r, d, x, l });
    });
    await query(
      this.pool,
      `storing ${n} ledger record(s)`,
      `INSERT INTO cds_ledger (subscription, partition, lo, t, hi, body)
       SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[])`,
      [subscription, partition, lo, t, hi, body],
    );
  }

  async find(
    subscription: string,
    partition: number,
    offset: number,
    maxScan: number,
  ): Promise<CommitRecord[]> {
    if (maxScan <= 0) return [];
    // The inner query is the embedded store's backward key walk from (offset, newest), bounded by
    // maxScan; the outer keeps the records whose span reaches past the offset, in the same order.
    const rows = await query<Row>(
      this.pool,
      `reading the ledger of '${subscription}'`,
      `SELECT lo, t, hi, body FROM (
         SELECT lo, t, seq, hi, body FROM cds_ledger
         WHERE subscription = $1 AND partition = $2 AND lo <= $3
         ORDER BY lo DESC, t DESC, seq DESC LIMIT $4
       ) s WHERE hi > $3 ORDER BY lo DESC, t DESC, seq DESC`,
      [subscription, partition, offset, maxScan],
    );
    return rows.map(toRecord);
  }

  async prune(before: number): Promise<number> {
    let total = 0;
    for (;;) {
      const rows = await query<{ n: number }>(
        this.pool,
        'pruning the ledger',
        `WITH gone AS (
           DELETE FROM cds_ledger WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM cds_ledger WHERE t < $1 LIMIT ${PRUNE_BATCH}))
           RETURNING 1)
         SELECT count(*)::integer AS n FROM gone`,
        [before],
      );
      const n = rows[0]?.n ?? 0;
      total += n;
      if (n < PRUNE_BATCH) return total;
    }
  }

  async nthNewestTime(n: number): Promise<number | undefined> {
    if (n < 1) return undefined;
    // No b-tree on t (see the migration): a top-n sort of one scan, once per ledger retention run.
    const rows = await query<{ t: number }>(
      this.pool,
      'reading the ledger size',
      'SELECT t FROM cds_ledger ORDER BY t DESC OFFSET $1 LIMIT 1',
      [n - 1],
    );
    return rows[0]?.t;
  }

  close(): Promise<void> {
    this.#closing ??= this.pool.end().catch(() => {});
    return this.#closing;
  }
}
