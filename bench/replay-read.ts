/**
 * Replay read rate from the local log, and disk bytes per stored decision (issue 6; ADR 0019):
 *
 *   npx tsx bench/replay-read.ts [--count 1000000] [--runs 3]
 *
 * Stores `count` realistic decisions (the seeded generator of the tests, routed by the default
 * template) in a fresh embedded log and decision index, as the service does, then per run:
 *   - log read: every record read back with EventLog.read (4,096 at a time) and decoded into records
 *     (key, headers, payload view): what subscription catch-up and replay start from;
 *   - history: the same records encoded as the NDJSON lines of GET /v1/topics/{topic}/decisions
 *     (envelope, expired mark, payload copied), in chunks, without HTTP.
 * Disk bytes per decision: allocated blocks of the log's files plus the decision index's files,
 * divided by the count. The files were just written, so reads come from the page cache.
 * Prints a table and writes bench/results/replay-read-<time>.json.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SegmentLog } from '../src/adapters/embedded/log/index.ts';
import { LmdbStateStore } from '../src/adapters/embedded/state/index.ts';
import { historyChunks, LineEncoder } from '../src/history/index.ts';
import { toIndexEntry, toRecord } from '../src/ingest/record.ts';
import { createDecisionGenerator } from '../test/helpers/decisions.ts';
import { gitCommit, machineInfo } from './lib/machine.ts';
import { writeResult } from './lib/result.ts';

const { values: args } = parseArgs({
  options: { count: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '3' } },
});
const COUNT = Number(args.count);
const RUNS = Number(args.runs);
const TARGET = 500_000;
const BATCH = 1000;
const REPO_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
/** CPU seconds (user + system) of this process since `from`: a rate per CPU second does not depend on other work on a shared machine. */
const cpuSeconds = (from: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1e6;
};
const diskBytes = (dir: string): number =>
  readdirSync(dir).reduce((s, f) => {
    const st = statSync(join(dir, f));
    return s + (st.isDirectory() ? diskBytes(join(dir, f)) : st.blocks * 512);
  }, 0);

/** Writes COUNT decisions into the log and the index in batches of 1,000, as the publish path does. */
async function fill(dir: string): Promise<{ payloadBytes: number; seconds: number }> {
  const log = await SegmentLog.open(join(dir, 'log'));
  const state = await LmdbStateStore.open(dir);
  const gen = createDecisionGenerator({ seed: 42, portfolios: 200, idPrefix: 'rr' });
  const templates = gen.take(2048);
  const t0 = performance.now();
  let payloadBytes = 0;
  let indexing: Promise<void> = Promise.resolve();
  try {
    for (let i = 0; i < COUNT; i += BATCH) {
      const receivedAt = Date.now();
      const batch = Array.from({ length: Math.min(BATCH, COUNT - i) }, (_, k) => {
        const d = { ...templates[(i + k) % templates.length]!, decisionId: `rr-${i + k}` };
        const route = {
          topics: [`decisions.${d.instrument.assetClass}.${d.portfolioId}`],
          key: d.portfolioId,
          priority: d.priority,
          ruleSet: 0,
        };
        return { d, route, rec: toRecord(d, route, receivedAt) };
      });
      const at = await log.append(batch.map((b) => b.rec));
      for (const b of batch) payloadBytes += b.rec.payload.byteLength;
      const entries = batch.map((b, k) =>
        toIndexEntry(b.d, b.route.topics, b.route.priority, 0, at[k]!.offset, receivedAt),
      );
      await indexing; // one index write in flight, as the indexer keeps it
      indexing = state.decisions.add(entries, { 0: at[at.length - 1]!.offset + 1 });
    }
    await indexing;
  } finally {
    await state.close();
    await log.close();
  }
  return { payloadBytes, seconds: (performance.now() - t0) / 1000 };
}

async function readAll(log: SegmentLog): Promise<number> {
  let n = 0;
  for (let off = log.extents()[0]!.first; ;) {
    const recs = await log.read(0, off, 4096);
    if (recs.length === 0) return n;
    n += recs.length;
    off = recs[recs.length - 1]!.offset + 1;
  }
}

/** The whole log as history lines; also the largest heap seen between chunks (memory stays flat). */
async function historyAll(log: SegmentLog): Promise<{ lines: number; bytes: number; peakHeapMb: number }> {
  const e = log.extents()[0]!;
  const encoder = new LineEncoder({ epoch: log.epoch, now: Date.now(), select: () => true });
  let bytes = 0;
  let lines = 0;
  let peak = 0;
  for await (const c of historyChunks(log, [{ partition: 0, from: e.first, to: e.next }], encoder)) {
    bytes += c.bytes.length;
    lines = c.lines;
    peak = Math.max(peak, process.memoryUsage().heapUsed);
  }
  return { lines, bytes, peakHeapMb: Math.round(peak / 2 ** 20) };
}

const dir = mkdtempSync(join(tmpdir(), 'cds-bench-replay-'));
try {
  process.stderr.write(`storing ${COUNT.toLocaleString('en-US')} decisions...\n`);
  const filled = await fill(dir);
  const logBytes = diskBytes(join(dir, 'log'));
  const indexBytes = diskBytes(join(dir, 'state'));
  const log = await SegmentLog.open(join(dir, 'log'));
  const runs: {
    readPerSec: number;
    readPerCpuSec: number;
    historyPerSec: number;
    historyPerCpuSec: number;
    historyMBps: number;
    historyPeakHeapMb: number;
  }[] = [];
  try {
    for (let r = 0; r < RUNS; r++) {
      const a = performance.now();
      const ca = process.cpuUsage();
      const n = await readAll(log);
      const readS = (performance.now() - a) / 1000;
      const readCpu = cpuSeconds(ca);
      const b = performance.now();
      const cb = process.cpuUsage();
      const h = await historyAll(log);
      const histS = (performance.now() - b) / 1000;
      const histCpu = cpuSeconds(cb);
      if (n !== COUNT || h.lines !== COUNT) throw new Error(`read ${n} and ${h.lines} of ${COUNT}`);
      runs.push({
        readPerSec: Math.round(n / readS),
        readPerCpuSec: Math.round(n / readCpu),
        historyPerSec: Math.round(h.lines / histS),
        historyPerCpuSec: Math.round(h.lines / histCpu),
        historyMBps: Math.round(h.bytes / histS / 2 ** 20),
        historyPeakHeapMb: h.peakHeapMb,
      });
      process.stderr.write(`run ${r + 1}: ${JSON.stringify(runs[r])}\n`);
    }
  } finally {
    await log.close();
  }
  const readPerSec = median(runs.map((r) => r.readPerSec));
  const historyPerSec = median(runs.map((r) => r.historyPerSec));
  const readPerCpuSec = median(runs.map((r) => r.readPerCpuSec));
  const historyPerCpuSec = median(runs.map((r) => r.historyPerCpuSec));
  const perDecision = {
    log: Math.round((logBytes / COUNT) * 10) / 10,
    index: Math.round((indexBytes / COUNT) * 10) / 10,
    total: Math.round(((logBytes + indexBytes) / COUNT) * 10) / 10,
    payload: Math.round((filled.payloadBytes / COUNT) * 10) / 10,
  };
  const rows: [string, string][] = [
    ['decisions stored', COUNT.toLocaleString('en-US')],
    [
      'log read + decode (decisions/s, median)',
      `${readPerSec.toLocaleString('en-US')} (target ${TARGET.toLocaleString('en-US')}: ${readPerSec >= TARGET ? 'met' : 'NOT met'})`,
    ],
    ['log read + decode (decisions per CPU second)', readPerCpuSec.toLocaleString('en-US')],
    ['history NDJSON encode (decisions/s, median)', historyPerSec.toLocaleString('en-US')],
    ['history NDJSON encode (decisions per CPU second)', historyPerCpuSec.toLocaleString('en-US')],
    ['history NDJSON (MiB/s, median)', String(median(runs.map((r) => r.historyMBps)))],
    [
      'history peak heap while streaming (MiB, max)',
      String(Math.max(...runs.map((r) => r.historyPeakHeapMb))),
    ],
    [
      'disk bytes per decision: log + index = total',
      `${perDecision.log} + ${perDecision.index} = ${perDecision.total}`,
    ],
    ['decision JSON payload bytes (mean)', String(perDecision.payload)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  console.log(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n'));
  const startedAt = new Date().toISOString();
  const { commit, dirty } = gitCommit(REPO_ROOT);
  const file = join(REPO_ROOT, 'bench', 'results', `replay-read-${startedAt.replace(/[:.]/g, '-')}.json`);
  writeResult(file, {
    workload: 'replay-read',
    startedAt,
    config: { count: COUNT, runs: RUNS, readBatch: 4096, pageCache: 'warm (files just written)' },
    target: { readPerSec: TARGET, met: readPerSec >= TARGET },
    readPerSec,
    readPerCpuSec,
    historyPerSec,
    historyPerCpuSec,
    diskBytesPerDecision: perDecision,
    runs,
    storeSeconds: Math.round(filled.seconds * 10) / 10,
    machine: machineInfo(),
    commit,
    dirty,
  });
  console.log(`result: ${file}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
