/**
 * Recovery point and recovery time of `cds backup` / `cds restore` (ADR 0014), measured:
 *
 *   npx tsx bench/backup.ts [--decisions N] [--load-concurrency C] [--runs R]
 *
 * Per run: a service in a child process on a fresh data directory, N decisions published (batches
 * of 1,000), then publishers under load (C requests in flight, single decisions and batches of
 * 2..8) while `cds backup` runs through the admin API. Recovery point: the records the log
 * acknowledged when the backup finished that are not in it (manifest: sourceNextAtFinish minus the
 * backup's extent), and the time from the backup's last log snapshot to its finish. Then the
 * service stops; recovery time: `cds restore` into a new directory plus the restored service's start
 * (to its start line, index caught up), beside the start of the first, empty service (the part of
 * a start that does not depend on the data). Prints one JSON line per run, then the medians.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Manifest } from '../src/backup/index.ts';
import { startPublishers } from '../test/crash/load.ts';
import { runCds } from '../test/helpers/cli.ts';
import { createDecisionGenerator } from '../test/helpers/decisions.ts';
import { makeTempDir, startServer } from '../test/helpers/server.ts';

const { values } = parseArgs({
  options: {
    decisions: { type: 'string', default: '100000' },
    'load-concurrency': { type: 'string', default: '64' },
    runs: { type: 'string', default: '3' },
  },
});
const N = Number(values.decisions);
const C = Number(values['load-concurrency']);
const RUNS = Number(values.runs);
const ENV = { CDS_RATE_REQUESTS_PER_SECOND: '1000000', CDS_LOG_LEVEL: 'warn' };

async function cds(...argv: string[]): Promise<string> {
  const r = await runCds(...argv);
  if (r.code !== 0) throw new Error(`cds ${argv[0]} exited ${r.code}: ${r.err}`);
  return r.out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

interface Run {
  decisions: number;
  backupMs: number;
  backupBytes: number;
  logPasses: number;
  /** Records acknowledged by the log when the backup finished, not in it. */
  rpoRecords: number;
  /** From the last log snapshot to the manifest. */
  rpoMs: number;
  /** Publish rate while the backup ran (decisions/s acknowledged). */
  loadRate: number;
  restoreMs: number;
  /** Start of the restored service, and of the first (empty) one: the difference is what the data costs. */
  startMs: number;
  emptyStartMs: number;
  rtoMs: number;
}

async function oneRun(): Promise<Run> {
  const dir = makeTempDir('cds-bench-backup-');
  const server = await startServer({ dataDir: join(dir, 'data'), env: ENV });
  try {
    const gen = createDecisionGenerator({ seed: 7, idPrefix: `bb${Date.now()}`, portfolios: 200 });
    for (let sent = 0; sent < N;) {
      const batch = Array.from({ length: 4 }, () => gen.take(Math.min(1000, N - sent))).filter(
        (b) => b.length,
      );
      sent += batch.reduce((n, b) => n + b.length, 0);
      await Promise.all(
        batch.map(async (b) => {
          const r = await fetch(`${server.url}/v1/decisions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
            body: JSON.stringify(b),
          });
          if (r.status !== 200) throw new Error(`publish answered ${r.status}`);
          await r.arrayBuffer();
        }),
      );
    }
    const pubs = startPublishers({
      url: server.url,
      key: server.adminKey,
      gen,
      concurrency: C,
      batchShare: 0.3,
      maxBatch: 8,
    });
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = pubs.elapsed();
    const backupDir = join(dir, 'backup');
    await cds('backup', '--to', backupDir, '--url', server.url, '--key', server.adminKey);
    const t1 = pubs.elapsed();
    const records = await pubs.stop();
    const during = records
      .filter((r) => r.endedAt >= t0 && r.endedAt <= t1 && r.outcome.kind === 'acked')
      .reduce((n, r) => n + r.decisions.length, 0);
    await server.stop('SIGTERM');
    const m = JSON.parse(readFileSync(join(backupDir, 'manifest.json'), 'utf8')) as Manifest;
    const next = m.extents[0]?.next ?? 0;
    const r0 = performance.now();
    await cds('restore', '--from', backupDir, '--data-dir', join(dir, 'restored'));
    const restoreMs = performance.now() - r0;
    const restored = await startServer({
      dataDir: join(dir, 'restored'),
      env: ENV,
      adminKey: server.adminKey,
    });
    await restored.stop('SIGTERM');
    return {
      decisions: next,
      backupMs: Date.parse(m.finishedAt) - Date.parse(m.startedAt),
      backupBytes: m.bytes,
      logPasses: m.logPasses,
      rpoRecords: m.sourceNextAtFinish - next,
      rpoMs: Date.parse(m.finishedAt) - Date.parse(m.extentTakenAt),
      loadRate: Math.round(during / ((t1 - t0) / 1000)),
      restoreMs: Math.round(restoreMs),
      startMs: Math.round(restored.startMs),
      emptyStartMs: Math.round(server.startMs),
      rtoMs: Math.round(restoreMs + restored.startMs),
    };
  } finally {
    await server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

const runs: Run[] = [];
for (let i = 0; i < RUNS; i++) {
  const r = await oneRun();
  runs.push(r);
  console.log(JSON.stringify(r));
}
const med = Object.fromEntries(
  (Object.keys(runs[0] ?? {}) as (keyof Run)[]).map((k) => [k, median(runs.map((r) => r[k]))]),
);
console.log(JSON.stringify({ medianOf: RUNS, ...med }));
