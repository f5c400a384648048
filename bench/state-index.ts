/**
 * Decision-index benchmark of the embedded StateStore (`npx tsx bench/state-index.ts [--entries N]
 * [--runs R] [--inflight K] [--batch B] [--by-partition]`): entries/s that `add()` sustains with batches of 1,000 realistic entries,
 * the CPU per entry of the main thread and of the whole process (main + index writer), `revisions()` look-ups/s, first-page query times filtered
 * by portfolioId and by assetClass, and disk bytes per indexed entry (every file of the store). Each run uses a fresh data
 * directory; the summary gives the median of the runs.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { LmdbStateStore } from '../src/adapters/embedded/state/index.ts';
import type { DecisionIndexEntry, DecisionQuery } from '../src/state/port.ts';

const { values: args } = parseArgs({
  options: {
    entries: { type: 'string', default: '300000' },
    runs: { type: 'string', default: '3' },
    inflight: { type: 'string', default: '2' },
    batch: { type: 'string', default: '1000' },
    // Order each batch by partition, as the Indexer's batches are (it takes the ready run of each
    // partition in turn); the default keeps the generation order (all partitions interleaved).
    'by-partition': { type: 'boolean', default: false },
  },
});
const ENTRIES = Number(args.entries);
const RUNS = Number(args.runs);
const INFLIGHT = Number(args.inflight);
const BATCH = Number(args.batch);
const BY_PARTITION = args['by-partition'];
const PARTITIONS = 8;
const ASSET_CLASSES = ['equity', 'fx', 'rates', 'credit', 'commodity'];
const TYPES = ['trade', 'trade', 'trade', 'rebalance', 'hedge', 'cancel'];
const VERDICTS = ['approved', 'approved', 'approved', 'conditional', 'rejected'];

/** A batch of realistic entries: 500 portfolios, 50 strategies, 2,000 symbols, ~10% amendments. */
function makeBatch(start: number, t0: number, offsets: number[]): DecisionIndexEntry[] {
  const out: DecisionIndexEntry[] = [];
  for (let i = start; i < start + BATCH; i++) {
    const amend = i % 10 === 9 && i > 100;
    const d = amend ? i - 97 : i; // an amendment is a later revision of a recent decision
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
  return BY_PARTITION ? out.sort((a, b) => a.partition - b.partition) : out;
}

/**
 * CPU time (ms) of the main thread alone, from /proc (Linux; 10 ms resolution). Event-loop
 * utilisation would count time the thread was runnable but preempted, which on a shared 2-core
 * machine is most of it.
 */
function mainThreadCpuMs(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 100 Hz ticks
}

interface RunResult {
  addPerSec: number;
  mainCpuUsPerEntry: number;
  mainEluUsPerEntry: number;
  processCpuUsPerEntry: number;
  revisionsPerSec: number;
  queryPortfolioMs: number;
  queryAssetClassMs: number;
  queryPortfolioAscMs: number;
  bytesPerEntry: number;
}

async function run(): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'cds-bench-state-'));
  const store = await LmdbStateStore.open(dir);
  try {
    const t0 = Date.UTC(2026, 0, 5, 14, 30);
    const offsets = new Array<number>(PARTITIONS).fill(0);
    // Build all batches first so that the measured main-thread time is the store's alone.
    const batches: DecisionIndexEntry[][] = [];
    for (let s = 0; s < ENTRIES; s += BATCH) batches.push(makeBatch(s, t0, offsets));

    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const main0 = mainThreadCpuMs();
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
    const mainCpu = mainThreadCpuMs() - main0;
    const elu = performance.eventLoopUtilization(elu0);
    const cpu = process.cpuUsage(cpu0);

    // revisions(): batches of 1,000 ids, a tenth of them unknown, as the publish path asks.
    const ids = batches.flatMap((b) => b.map((e) => e.decisionId));
    const lookups = 200_000;
    const r0 = performance.now();
    for (let s = 0; s < lookups; s += BATCH) {
      const q: string[] = [];
      for (let i = 0; i < BATCH; i++)
        q.push(i % 10 === 0 ? `missing-${s + i}` : (ids[((s + i) * 7919) % ids.length] as string));
      await store.decisions.revisions(q);
    }
    const revisionsPerSec = lookups / ((performance.now() - r0) / 1000);

    const firstPage = async (q: DecisionQuery, order: 'asc' | 'desc'): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const a = performance.now();
        const page = await store.decisions.query(q, { limit: 100, order });
        times.push(performance.now() - a);
        if (page.entries.length !== 100) throw new Error(`expected a full page for ${JSON.stringify(q)}`);
      }
      return median(times);
    };
    const queryPortfolioMs = await firstPage({ portfolioId: 'pf-17' }, 'desc');
    const queryPortfolioAscMs = await firstPage({ portfolioId: 'pf-17' }, 'asc');
    const queryAssetClassMs = await firstPage({ assetClass: 'fx' }, 'desc');

    const counts = await store.decisions.counts();
    // Every file of the store (LMDB and, since layout 2, the row and id files).
    let diskBytes = 0;
    for (const f of readdirSync(join(dir, 'state')))
      diskBytes += statSync(join(dir, 'state', f)).blocks * 512;
    return {
      addPerSec: ENTRIES / (wall / 1000),
      mainCpuUsPerEntry: (mainCpu * 1000) / ENTRIES,
      mainEluUsPerEntry: (elu.active * 1000) / ENTRIES,
      processCpuUsPerEntry: (cpu.user + cpu.system) / ENTRIES,
      revisionsPerSec,
      queryPortfolioMs,
      queryAssetClassMs,
      queryPortfolioAscMs,
      bytesPerEntry: diskBytes / counts.revisions,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
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
console.log(
  `median of ${RUNS} runs, ${ENTRIES} entries, batches of ${BATCH}${BY_PARTITION ? ' by partition' : ''}, ${INFLIGHT} in flight:`,
);
for (const k of keys) console.log(`  ${k}: ${median(results.map((r) => r[k])).toFixed(2)}`);
