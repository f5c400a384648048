/**
 * Cursor-commit benchmark of the PostgreSQL SubscriptionStore (`npx tsx bench/state-postgres-cursors.ts
 * [--subs 200] [--partitions 8] [--pending 16] [--anchors 32] [--seconds 5] [--runs 3]`).
 *
 * The delivery engine does not write per ack: every 200 ms it commits the snapshot of each subscription
 * whose cursor moved, all in one `saveCursors` call (ADR 0009). So what PostgreSQL must sustain for
 * 200 subscriptions at 200,000 deliveries/s is 5 commits/s of 200 snapshots each, whatever the
 * delivery rate (the rate only changes how many pending offsets and anchors a snapshot carries).
 * Measured, commits back to back with one in flight: the latency of one 200-subscription commit
 * (median, p99), commits/s and subscription snapshots/s sustained, and client CPU per commit; then
 * the same commit written the naive way (one UPSERT per subscription, in one transaction), to show
 * what the single statement saves. The server is the test harness's
 * (test/helpers/postgres.ts); each run uses a fresh database. The summary gives medians of the runs.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PostgresSubscriptionStore } from '../src/adapters/postgres/index.ts';
import type { CursorSnapshot } from '../src/state/subscriptions-port.ts';
import { startPostgres } from '../test/helpers/postgres.ts';

const { values: args } = parseArgs({
  options: {
    subs: { type: 'string', default: '200' },
    partitions: { type: 'string', default: '8' },
    pending: { type: 'string', default: '16' },
    anchors: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
  },
});
const SUBS = Number(args.subs);
const PARTS = Number(args.partitions);
const PENDING = Number(args.pending);
const ANCHORS = Number(args.anchors);
const SECONDS = Number(args.seconds);
const RUNS = Number(args.runs);

/** The snapshots of one commit, number `n`: every cursor moved on by 1,000 deliveries/s x 200 ms. */
function commitOf(names: readonly string[], n: number): Map<string, CursorSnapshot[]> {
  const m = new Map<string, CursorSnapshot[]>();
  names.forEach((name, s) => {
    const cursors: CursorSnapshot[] = [];
    for (let p = 0; p < PARTS; p++) {
      const next = n * 25 + s; // 200 deliveries per subscription per 200 ms over 8 partitions
      cursors.push({
        partition: p,
        next,
        pending: Array.from({ length: PENDING }, (_, i) => [next - PENDING + i, 1 + (i % 3)] as const),
        anchors: Array.from({ length: ANCHORS }, (_, i) => [`pf-${(s * 31 + i) % 500}`, next - i] as const),
      });
    }
    m.set(name, cursors);
  });
  return m;
}

const pct = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const median = (xs: number[]): number => pct(xs, 0.5);

interface Result {
  commitsPerS: number;
  snapshotsPerS: number;
  p50Ms: number;
  p99Ms: number;
  cpuMsPerCommit: number;
}

async function measure(write: (n: number) => Promise<void>): Promise<Result> {
  const lat: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < SECONDS * 1000) {
    const s = performance.now();
    await write(n++);
    lat.push(performance.now() - s);
  }
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    commitsPerS: n / secs,
    snapshotsPerS: (n * SUBS) / secs,
    p50Ms: median(lat),
    p99Ms: pct(lat, 0.99),
    cpuMsPerCommit: (cpu.user + cpu.system) / 1000 / n,
  };
}

async function run(url: string): Promise<{ batched: Result; naive: Result }> {
  const store = await PostgresSubscriptionStore.open(url);
  const names = Array.from({ length: SUBS }, (_, i) => `sub-${String(i).padStart(4, '0')}`);
  const at = new Date().toISOString();
  for (const name of names)
    await store.put(
      { name, version: 1, spec: { name, topics: ['decisions.>'] }, createdAt: at, updatedAt: at },
      0,
    );
  const commits = Array.from({ length: 8 }, (_, i) => commitOf(names, i)); // built ahead: measure the store
  const batched = await measure(async (n) => {
    await store.saveCursors(commits[n % commits.length] as Map<string, CursorSnapshot[]>);
  });
  await store.close();

  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const naive = await measure(async (n) => {
    await client.query('BEGIN');
    for (const [name, cursors] of commits[n % commits.length] as Map<string, CursorSnapshot[]>)
      await client.query(
        `INSERT INTO cds_subscription_cursor_sets (name, partitions, cursors) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET partitions = EXCLUDED.partitions, cursors = EXCLUDED.cursors`,
        [name, cursors.map((c) => c.partition), JSON.stringify(cursors)],
      );
    await client.query('COMMIT');
  });
  await client.end();
  return { batched, naive };
}

const fmt = (r: Result): string =>
  `${r.commitsPerS.toFixed(1)} commits/s = ${Math.round(r.snapshotsPerS)} snapshots/s; ` +
  `latency p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms; client CPU ${r.cpuMsPerCommit.toFixed(1)} ms/commit`;

const results: { batched: Result; naive: Result }[] = [];
for (let i = 0; i < RUNS; i++) {
  const db = await startPostgres();
  if ('skipped' in db) {
    console.log(`skipped: ${db.skipped}`);
    process.exit(0);
  }
  try {
    const r = await run(db.url);
    results.push(r);
    console.log(`run ${i + 1}: batched ${fmt(r.batched)}`);
    console.log(`run ${i + 1}: naive   ${fmt(r.naive)}`);
  } finally {
    await db.stop();
  }
}
const med = (pick: (r: { batched: Result; naive: Result }) => Result): Result => ({
  commitsPerS: median(results.map((r) => pick(r).commitsPerS)),
  snapshotsPerS: median(results.map((r) => pick(r).snapshotsPerS)),
  p50Ms: median(results.map((r) => pick(r).p50Ms)),
  p99Ms: median(results.map((r) => pick(r).p99Ms)),
  cpuMsPerCommit: median(results.map((r) => pick(r).cpuMsPerCommit)),
});
console.log(
  `\n${SUBS} subscriptions x ${PARTS} partitions, ${PENDING} pending and ${ANCHORS} anchors per cursor, ` +
    `${SECONDS} s per measure, medians of ${RUNS} runs:`,
);
console.log(`saveCursors (one statement):   ${fmt(med((r) => r.batched))}`);
console.log(`one UPSERT per subscription: ${fmt(med((r) => r.naive))}`);
console.log(
  `the engine needs 5 commits/s (one per 200 ms): headroom x${(med((r) => r.batched).commitsPerS / 5).toFixed(0)}`,
);
