/**
 * Ledger-commit benchmark of the PostgreSQL LedgerStore (`npx tsx bench/ledger-postgres.ts
 * [--subs 200] [--partitions 8] [--commits 25] [--runs 3]`).
 *
 * The ledger writes nothing per delivery (ADR 0011): each cursor commit (at most 5 a second) hands
 * over one record per subscription and partition that changed, and `append` stores them in one
 * statement. The worst case is every subscription changing on every partition at every commit:
 * 200 x 8 = 1,600 records per commit. Measured, commits back to back: the latency of one such
 * `append` (median, p90) and the client CPU per commit; then a `find` per subscription (the ledger
 * query's read), the table's bytes per record (with its indexes) and a `prune` of everything. The
 * server is the test harness's (test/helpers/postgres.ts); each run uses a fresh database. The
 * summary gives medians of the runs.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PostgresLedgerStore } from '../src/adapters/postgres/index.ts';
import type { CommitRecordAt } from '../src/ledger/port.ts';
import { startPostgres } from '../test/helpers/postgres.ts';

const { values: args } = parseArgs({
  options: {
    subs: { type: 'string', default: '200' },
    partitions: { type: 'string', default: '8' },
    commits: { type: 'string', default: '25' },
    runs: { type: 'string', default: '3' },
  },
});
const SUBS = Number(args.subs);
const PARTITIONS = Number(args.partitions);
const COMMITS = Number(args.commits);

/** One commit: every subscription resolved 90 offsets, saw 10 delivered and one expire, per partition. */
function commit(k: number): CommitRecordAt[] {
  const out: CommitRecordAt[] = [];
  const lo = k * 100;
  for (let s = 0; s < SUBS; s++)
    for (let p = 0; p < PARTITIONS; p++)
      out.push({
        subscription: `sub-${s}`,
        partition: p,
        record: {
          t: Date.now(),
          lo,
          hi: lo + 100,
          r: [lo, lo + 90],
          d: [lo + 90, lo + 100],
          x: [[lo + 3, 'expired']],
        },
      });
  return out;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

interface Run {
  p50: number;
  p90: number;
  cpuMs: number;
  findMs: number;
  bytesPerRecord: number;
  pruneMs: number;
}

async function run(): Promise<Run> {
  const db = await startPostgres();
  if ('skipped' in db) throw new Error(`no PostgreSQL: ${db.skipped}`);
  const store = await PostgresLedgerStore.open(db.url);
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    const times: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let k = 0; k < COMMITS; k++) {
      const records = commit(k);
      const t0 = performance.now();
      await store.append(records);
      times.push(performance.now() - t0);
    }
    const cpu = process.cpuUsage(cpu0);
    times.sort((a, b) => a - b);
    const f0 = performance.now();
    for (let s = 0; s < SUBS; s++)
      await store.find(`sub-${s}`, s % PARTITIONS, (COMMITS * 100) / 2 + 5, 2000);
    const findMs = (performance.now() - f0) / SUBS;
    const { rows } = await admin.query<{ b: string; n: string }>(
      "SELECT pg_total_relation_size('cds_ledger') AS b, (SELECT count(*) FROM cds_ledger) AS n",
    );
    const p0 = performance.now();
    await store.prune(Date.now() + 1);
    return {
      p50: times[Math.floor(times.length / 2)] as number,
      p90: times[Math.floor(times.length * 0.9)] as number,
      cpuMs: (cpu.user + cpu.system) / 1000 / COMMITS,
      findMs,
      bytesPerRecord: Number(rows[0]?.b) / Number(rows[0]?.n),
      pruneMs: performance.now() - p0,
    };
  } finally {
    await admin.end();
    await store.close();
    await db.stop();
  }
}

const runs: Run[] = [];
for (let i = 0; i < Number(args.runs); i++) {
  const r = await run();
  runs.push(r);
  console.log(JSON.stringify({ run: i + 1, ...r }));
}
const summary = Object.fromEntries(
  (Object.keys(runs[0] as Run) as (keyof Run)[]).map((k) => [
    k,
    Math.round(median(runs.map((r) => r[k])) * 10) / 10,
  ]),
);
console.log(
  JSON.stringify({ records: SUBS * PARTITIONS, commits: COMMITS, runs: runs.length, median: summary }),
);
