/**
 * Decision-index benchmark of the PostgreSQL StateStore (`npx tsx bench/state-postgres.ts [--entries N]
 * [--runs R] [--inflight K]`), the counterpart of bench/state-index.ts: entries/s that `add()` sustains
 * with batches of 1,000 realistic entries, `revisions()` look-ups/s, first-page query times (by
 * portfolioId, latest revisions and all; by assetClass, which has no index of its own), `counts()`
 * time, and table plus index bytes per entry. The server is the test harness's (test/helpers/postgres.ts:
 * `CDS_TEST_POSTGRES_URL`, else a temporary local server with fsync on); each run uses a fresh database.
 * The summary gives the median of the runs.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PostgresStateStore } from '../src/adapters/postgres/index.ts';
import type { DecisionIndexEntry, DecisionQuery } from '../src/state/port.ts';
import { startPostgres } from '../test/helpers/postgres.ts';

const { values: args } = parseArgs({
  options: {
    entries: { type: 'string', default: '200000' },
    runs: { type: 'string', default: '3' },
    inflight: { type: 'string', default: '2' },
  },
});
const ENTRIES = Number(args.entries);
const RUNS = Number(args.runs);
const INFLIGHT = Number(args.inflight);
const BATCH = 1000;
const PARTITIONS = 8;
const ASSET_CLASSES = ['equity', 'fx', 'rates', 'credit', 'commodity'];
const TYPES = ['trade', 'trade', 'trade', 'rebalance', 'hedge', 'cancel'];
const VERDICTS = ['approved', 'approved', 'approved', 'conditional', 'rejected'];

/** A batch of realistic entries: 500 portfolios, 50 strategies, 2,000 symbols, ~10% amendments (as bench/state-index.ts). */
function makeBatch(start: number, t0: number, offsets: number[]): DecisionIndexEntry[] {
  const out: DecisionIndexEntry[] = [];
  for (let i = start; i < start + BATCH; i++) {
    const amend = i % 10 === 9 && i > 100;
    const d = amend ? i - 97 : i;
    const pf = (d * 7919) % 500;
    const partition = pf % PARTITIONS;
    const offset = offsets[partition] as number;
    offsets[partition] = offset + 1;
    const assetClass = ASSET_CLASSES[d % ASSET_CLASSES.length] as string;
    out.push({
      decisionId: `dec-${(d * 2654435761) % 4294967296}-${d.toString(36).padStart(6, '0')}`,
      revision: amend ? 2 : 1,
      partition,
      offset,
      receivedAt: t0 + Math.floor(i / 100),
      portfolioId: `pf-${pf}`,
      strategyId: `strat-${d % 50}`,
      symbol: `SYM${(d * 31) % 2000}`,
      assetClass,
      type: TYPES[i % TYPES.length] as string,
      verdict: VERDICTS[i % VERDICTS.length] as string,
      priority: i % 10,
      topics: [`decisions.${assetClass}.pf-${pf}`],
    });
  }
  return out;
}

interface RunResult {
  addPerSec: number;
  processCpuUsPerEntry: number;
  revisionsPerSec: number;
  queryPortfolioDescMs: number;
  queryPortfolioAscMs: number;
  queryPortfolioAllRevisionsMs: number;
  queryAssetClassMs: number;
  queryTopicMs: number;
  countsMs: number;
  bytesPerEntry: number;
}

async function run(): Promise<RunResult> {
  const db = await startPostgres();
  if ('skipped' in db) throw new Error(`no PostgreSQL: ${db.skipped}`);
  const store = await PostgresStateStore.open(db.url, { poolSize: Math.max(2, INFLIGHT) });
  try {
    const t0 = Date.UTC(2026, 0, 5, 14, 30);
    const offsets = new Array<number>(PARTITIONS).fill(0);
    const batches: DecisionIndexEntry[][] = [];
    for (let s = 0; s < ENTRIES; s += BATCH) batches.push(makeBatch(s, t0, offsets));

    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    const inflight = new Set<Promise<void>>();
    for (const b of batches) {
      const last = b[b.length - 1] as DecisionIndexEntry;
      const p: Promise<void> = store.decisions.add(b, { [last.partition]: last.offset + 1 }).then(() => {
        inflight.delete(p);
      });
      inflight.add(p);
      if (inflight.size >= INFLIGHT) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    const wall = performance.now() - w0;
    const cpu = process.cpuUsage(cpu0);

    // Fresh statistics, as autovacuum would have them on a long-running server.
    const admin = new pg.Client({ connectionString: db.url });
    admin.on('error', () => {});
    await admin.connect();
    await admin.query('ANALYZE cds_decisions');

    // revisions(): batches of 1,000 ids, a tenth of them unknown, as the publish path asks.
    const ids = batches.flatMap((b) => b.map((e) => e.decisionId));
    const lookups = 100_000;
    const r0 = performance.now();
    for (let s = 0; s < lookups; s += BATCH) {
      const q: string[] = [];
      for (let i = 0; i < BATCH; i++)
        q.push(i % 10 === 0 ? `missing-${s + i}` : (ids[((s + i) * 7919) % ids.length] as string));
      await store.decisions.revisions(q);
    }
    const revisionsPerSec = lookups / ((performance.now() - r0) / 1000);

    const firstPage = async (q: DecisionQuery, order: 'asc' | 'desc', full = true): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < 7; i++) {
        const a = performance.now();
        const page = await store.decisions.query(q, { limit: 100, order });
        times.push(performance.now() - a);
        if (full && page.entries.length !== 100)
          throw new Error(`expected a full page for ${JSON.stringify(q)}`);
      }
      return median(times);
    };
    const queryPortfolioDescMs = await firstPage({ portfolioId: 'pf-17' }, 'desc');
    const queryPortfolioAscMs = await firstPage({ portfolioId: 'pf-17' }, 'asc');
    const queryPortfolioAllRevisionsMs = await firstPage({ portfolioId: 'pf-17', latestOnly: false }, 'desc');
    const queryAssetClassMs = await firstPage({ assetClass: 'fx' }, 'desc');
    // No index serves a topic pattern: the first page is a partial one after the default scan budget.
    const queryTopicMs = await firstPage({ topic: 'decisions.*.pf-17' }, 'desc', false);

    const c0 = performance.now();
    const counts = await store.decisions.counts();
    const countsMs = performance.now() - c0;
    const { rows } = await admin.query<{ bytes: string }>(
      `SELECT pg_total_relation_size('cds_decisions') AS bytes`,
    );
    await admin.end();
    return {
      addPerSec: ENTRIES / (wall / 1000),
      processCpuUsPerEntry: (cpu.user + cpu.system) / ENTRIES,
      revisionsPerSec,
      queryPortfolioDescMs,
      queryPortfolioAscMs,
      queryPortfolioAllRevisionsMs,
      queryAssetClassMs,
      queryTopicMs,
      countsMs,
      bytesPerEntry: Number(rows[0]?.bytes) / counts.revisions,
    };
  } finally {
    await store.close();
    await db.stop();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const results: RunResult[] = [];
for (let i = 0; i < RUNS; i++) {
  const r = await run();
  results.push(r);
  console.log(
    `run ${i + 1}:`,
    JSON.stringify(r, (_k, v: unknown) => (typeof v === 'number' ? Number(v.toFixed(2)) : v)),
  );
}
const keys = Object.keys(results[0] as RunResult) as (keyof RunResult)[];
console.log(`median of ${RUNS} runs, ${ENTRIES} entries, batches of ${BATCH}, ${INFLIGHT} in flight:`);
for (const k of keys) console.log(`  ${k}: ${median(results.map((r) => r[k])).toFixed(2)}`);
