/**
 * The decision index on PostgreSQL: one row per stored revision in `cds_decisions` (see
 * migrations/0001_state.sql). `add()` is one statement (hence one transaction, one round trip): the
 * batch travels as one JSON parameter expanded by `jsonb_to_recordset` (measured a little faster, and
 * cheaper for the client, than `unnest` of 13 column arrays) and goes in with ON CONFLICT DO NOTHING;
 * the per-partition checkpoints move forward only, with GREATEST. Rows go in sorted by key, and
 * checkpoint rows are upserted after them in ascending partition order, so that instances indexing
 * overlapping batches concurrently (re-indexing after a restart) take locks in one order and cannot
 * deadlock; within a batch, the first of two entries with the same key wins (the sort's last key is the
 * batch position).
 *
 * A query walks one ordered index range: the (field, receivedAt, partition, offset) index of the
 * first given field among portfolioId, symbol and strategyId, else the time index. At most
 * `scanLimit` rows of that walk are examined; the other filters (remaining equalities, priority,
 * topic pattern as a regular expression, latest revision by NOT EXISTS on the primary key) are
 * applied to them, so a selective query returns a partial page instead of reading the whole table.
 */
import type pg from 'pg';
import type {
  DecisionIndex,
  DecisionIndexEntry,
  DecisionQuery,
  QueryMark,
  QueryPage,
  RevisionRef,
} from '../../state/port.ts';
import { mapPgError } from './errors.ts';
import { topicPatternRegex } from './topic-regex.ts';

/** Rows a query examines before it returns a partial page, unless the caller says otherwise. */
export const DEFAULT_SCAN_LIMIT = 10_000;

/** Equality filters with their column, in the order they are preferred as the index to walk. */
const EQUALITY: readonly [keyof DecisionQuery & string, string, boolean][] = [
  ['portfolioId', 'portfolio_id', true],
  ['symbol', 'symbol', true],
  ['strategyId', 'strategy_id', true],
  ['assetClass', 'asset_class', false],
  ['type', 'type', false],
  ['verdict', 'verdict', false],
];

const COLUMNS =
  'decision_id, revision, partition, "offset", received_at, portfolio_id, strategy_id, symbol, asset_class, type, verdict, priority, topics';

interface Row {
  decision_id: string;
  revision: number;
  partition: number;
  offset: number;
  received_at: number;
  portfolio_id: string;
  strategy_id: string;
  symbol: string;
  asset_class: string;
  type: string;
  verdict: string;
  priority: number;
  topics: string[];
}

const ADD_SQL = `WITH ins AS (
  INSERT INTO cds_decisions (${COLUMNS})
  SELECT "decisionId", revision, partition, "offset", "receivedAt", "portfolioId", "strategyId", symbol,
         "assetClass", type, verdict, priority, topics
  FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS ("decisionId" text, revision integer, partition integer,
         "offset" bigint, "receivedAt" bigint, "portfolioId" text, "strategyId" text, symbol text,
         "assetClass" text, type text, verdict text, priority smallint, topics text[]))
       WITH ORDINALITY AS x("decisionId", revision, partition, "offset", "receivedAt", "portfolioId",
         "strategyId", symbol, "assetClass", type, verdict, priority, topics, ord)
  ORDER BY "decisionId", revision, ord
  ON CONFLICT (decision_id, revision) DO NOTHING
  RETURNING 1
), cp AS (
  INSERT INTO cds_decision_checkpoints (partition, next_offset)
  SELECT * FROM unnest($2::int[], $3::bigint[])
  ON CONFLICT (partition) DO UPDATE
    SET next_offset = GREATEST(cds_decision_checkpoints.next_offset, EXCLUDED.next_offset)
  RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS inserted, (SELECT count(*) FROM cp) AS checkpoints`;

/** Rows `trim` deletes per statement (and transaction). */
export const TRIM_BATCH = 10_000;

/** DecisionIndex over `cds_decisions` and `cds_decision_checkpoints`. */
export class PostgresDecisionIndex implements DecisionIndex {
  constructor(private readonly pool: pg.Pool) {}

  async add(
    entries: readonly DecisionIndexEntry[],
    through: Readonly<Record<number, number>>,
  ): Promise<void> {
    const n = entries.length;
    // Ascending partitions: concurrent adds lock checkpoint rows in one order and cannot deadlock on them.
    const parts = Object.keys(through)
      .map(Number)
      .sort((a, b) => a - b);
    const nexts = parts.map((p) => through[p] as number);
    if (n === 0 && parts.length === 0) return;
    try {
      await this.pool.query(ADD_SQL, [JSON.stringify(entries), parts, nexts]);
    } catch (e) {
      throw mapPgError(e, `indexing ${n} decisions`);
    }
  }

  async checkpoint(): Promise<Record<number, number>> {
    const { rows } = await this.run<{ partition: number; next_offset: number }>(
      'reading the index checkpoints',
      'SELECT partition, next_offset FROM cds_decision_checkpoints',
    );
    const out: Record<number, number> = {};
    for (const r of rows) out[r.partition] = r.next_offset;
    return out;
  }

  async revisions(decisionIds: readonly string[]): Promise<Map<string, RevisionRef[]>> {
    const out = new Map<string, RevisionRef[]>();
    if (decisionIds.length === 0) return out;
    const { rows } = await this.run<{
      decision_id: string;
      revision: number;
      partition: number;
      offset: number;
    }>(
      'looking up decision revisions',
      `SELECT decision_id, revision, partition, "offset" FROM cds_decisions
       WHERE decision_id = ANY($1::text[]) ORDER BY decision_id, revision`,
      [decisionIds],
    );
    for (const r of rows) {
      let list = out.get(r.decision_id);
      if (list === undefined) out.set(r.decision_id, (list = []));
      list.push({ revision: r.revision, partition: r.partition, offset: r.offset });
    }
    return out;
  }

  async get(decisionId: string, revision?: number): Promise<DecisionIndexEntry | undefined> {
    const { rows } =
      revision === undefined
        ? await this.run<Row>(
            'reading a decision',
            `SELECT ${COLUMNS} FROM cds_decisions WHERE decision_id = $1 ORDER BY revision DESC LIMIT 1`,
            [decisionId],
          )
        : await this.run<Row>(
            'reading a decision',
            `SELECT ${COLUMNS} FROM cds_decisions WHERE decision_id = $1 AND revision = $2`,
            [decisionId, revision],
          );
    const r = rows[0];
    return r === undefined ? undefined : toEntry(r);
  }

  async counts(): Promise<{ revisions: number; decisions: number }> {
    const { rows } = await this.run<{ revisions: number; decisions: number }>(
      'counting decisions',
      'SELECT count(*) AS revisions, count(DISTINCT decision_id) AS decisions FROM cds_decisions',
    );
    const r = rows[0];
    return { revisions: r?.revisions ?? 0, decisions: r?.decisions ?? 0 };
  }

  async query(
    q: DecisionQuery,
    opts: { after?: QueryMark; limit: number; order: 'asc' | 'desc'; scanLimit?: number },
  ): Promise<QueryPage> {
    if (opts.limit <= 0) return { entries: [] };
    const scanLimit = Math.max(1, Math.floor(opts.scanLimit ?? DEFAULT_SCAN_LIMIT));
    const { sql, params } = buildQuery(q, opts.order, opts.after, scanLimit, opts.limit);
    const { rows } = await this.run<Row & { hit: boolean; rn: number }>('querying decisions', sql, params);
    const entries: DecisionIndexEntry[] = [];
    for (const r of rows) {
      if (!r.hit) continue;
      if (entries.length === opts.limit)
        return { entries, next: markOf(entries[entries.length - 1] as QueryMark) };
      entries.push(toEntry(r));
    }
    // Fewer hits than asked: either the walk ended (done) or it used up its scan budget (go on from there).
    const last = rows[rows.length - 1];
    if (last !== undefined && Number(last.rn) === scanLimit)
      return {
        entries,
        next: { receivedAt: last.received_at, partition: last.partition, offset: last.offset },
      };
    return { entries };
  }

  async trim(partition: number, beforeOffset: number): Promise<void> {
    // TRIM_BATCH rows per statement, each its own transaction: a trim of millions of rows never holds
    // one long transaction (locks, WAL, a vacuum horizon held back), and publishes go on between.
    // The BRIN index on (partition, offset) (migration 0008) finds them without a b-tree to maintain.
    for (;;) {
      const { rowCount } = await this.run(
        'forgetting trimmed decisions',
        `DELETE FROM cds_decisions WHERE ctid = ANY (ARRAY(
           SELECT ctid FROM cds_decisions WHERE partition = $1 AND "offset" < $2 LIMIT ${TRIM_BATCH}))`,
        [partition, beforeOffset],
      );
      if ((rowCount ?? 0) < TRIM_BATCH) return;
    }
  }

  private async run<R extends pg.QueryResultRow>(
    what: string,
    sql: string,
    params: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params);
    } catch (e) {
      throw mapPgError(e, what);
    }
  }
}

/**
 * The SQL of one query page: the inner walk (driving index, time bounds, after mark, at most
 * `scanLimit` rows, numbered by `rn`), then the remaining filters as `hit`. Rows that are hits, and
 * the walk's last row when it used the whole budget, come back, at most limit + 1.
 */
export function buildQuery(
  q: DecisionQuery,
  order: 'asc' | 'desc',
  after: QueryMark | undefined,
  scanLimit: number,
  limit: number,
): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const dir = order === 'asc' ? 'ASC' : 'DESC';
  const orderBy = `received_at ${dir}, partition ${dir}, "offset" ${dir}`;
  const inner: string[] = [];
  const outer: string[] = [];
  let driver: string | undefined;
  for (const [field, column, indexed] of EQUALITY) {
    const v = q[field];
    if (v === undefined) continue;
    if (driver === undefined && indexed) {
      driver = column;
      inner.push(`${column} = ${p(v)}`);
    } else {
      outer.push(`${column} = ${p(v)}`);
    }
  }
  if (q.fromTime !== undefined) inner.push(`received_at >= ${p(q.fromTime)}`);
  if (q.toTime !== undefined) inner.push(`received_at < ${p(q.toTime)}`);
  if (after !== undefined)
    inner.push(
      `(received_at, partition, "offset") ${order === 'asc' ? '>' : '<'} (${p(after.receivedAt)}, ${p(after.partition)}, ${p(after.offset)})`,
    );
  if (q.minPriority !== undefined) outer.push(`priority >= ${p(q.minPriority)}`);
  if (q.maxPriority !== undefined) outer.push(`priority <= ${p(q.maxPriority)}`);
  if (q.topic !== undefined)
    outer.push(
      `EXISTS (SELECT 1 FROM unnest(s.topics) AS t(topic) WHERE t.topic ~ ${p(topicPatternRegex(q.topic))})`,
    );
  if (q.latestOnly !== false)
    outer.push(
      'NOT EXISTS (SELECT 1 FROM cds_decisions n WHERE n.decision_id = s.decision_id AND n.revision > s.revision)',
    );
  const where = inner.length === 0 ? '' : `WHERE ${inner.join(' AND ')}`;
  const hit = outer.length === 0 ? 'true' : outer.join(' AND ');
  const sql = `SELECT * FROM (
  SELECT s.*, (${hit}) AS hit FROM (
    SELECT w.*, row_number() OVER (ORDER BY ${orderBy}) AS rn FROM (
      SELECT ${COLUMNS} FROM cds_decisions ${where} ORDER BY ${orderBy} LIMIT ${p(scanLimit)}
    ) w
  ) s
) x WHERE x.hit OR x.rn = ${p(scanLimit)}
ORDER BY ${orderBy} LIMIT ${p(limit + 1)}`;
  return { sql, params };
}

function toEntry(r: Row): DecisionIndexEntry {
  return {
    decisionId: r.decision_id,
    revision: r.revision,
    partition: r.partition,
    offset: r.offset,
    receivedAt: r.received_at,
    portfolioId: r.portfolio_id,
    strategyId: r.strategy_id,
    symbol: r.symbol,
    assetClass: r.asset_class,
    type: r.type,
    verdict: r.verdict,
    priority: r.priority,
    topics: r.topics,
  };
}

function markOf(m: QueryMark): QueryMark {
  return { receivedAt: m.receivedAt, partition: m.partition, offset: m.offset };
}
