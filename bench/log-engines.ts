/**
 * Embedded log engines, measured (ADR 0002): durable append rate and latency with ~500-byte records
 * for SegmentLog (group commit) and for lmdb 3 (async put/transaction, waiting for the flush), and
 * the sequential read rate of both. Closed loop: N appenders each await their append before the
 * next, so latency is per append under that concurrency (not an open-loop publish latency).
 *
 *   npx tsx bench/log-engines.ts [--seconds 2] [--runs 3]
 *
 * Prints one line per run and the median of the runs per scenario.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import { open as openLmdb } from 'lmdb';
import { SegmentLog } from '../src/adapters/embedded/log/index.ts';
import { decodeRecord, encodeFrame, FRAME_HEADER_BYTES } from '../src/adapters/embedded/log/frame.ts';
import type { AppendRecord } from '../src/log/port.ts';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '2' }, runs: { type: 'string', default: '3' } },
});
const SECONDS = Number(values.seconds);
const RUNS = Number(values.runs);
const READ_MAX = 300_000;

/** A decision-like record: ~500-byte JSON payload and the four headers the service sets. */
function makeRecord(i: number): AppendRecord {
  const body = JSON.stringify({
    decisionId: `dec-${i}`,
    revision: 1,
    portfolioId: 'pf-equity-eu',
    strategyId: 'momentum-7',
    accountId: 'acc-0042',
    instrument: { symbol: `SYM${i % 500}`, venue: 'XETR', isin: 'DE0007164600' },
    side: i % 2 ? 'buy' : 'sell',
    quantity: 100 + (i % 900),
    limitPrice: 101.25,
    status: 'approved',
    policy: { outcome: 'approved', checks: ['limits', 'restricted-list', 'exposure'] },
    createdAt: '2024-05-01T09:30:00.000Z',
    pad: 'x'.repeat(150),
  });
  return {
    key: `SYM${i % 500}`,
    timestamp: 1_714_555_800_000 + i,
    headers: { decisionId: `dec-${i}`, revision: '1', priority: 'normal', topics: 'decisions.equity.eu' },
    payload: Buffer.from(body),
  };
}
const RECORDS = Array.from({ length: 4096 }, (_, i) => makeRecord(i));

interface AppendEngine {
  append(batch: readonly AppendRecord[]): Promise<void>;
  readAll(max: number): Promise<number>;
  close(): Promise<void>;
}

async function segmentEngine(dir: string): Promise<AppendEngine> {
  const log = await SegmentLog.open(dir);
  return {
    append: async (b) => void (await log.append(b)),
    readAll: async (max) => {
      let n = 0;
      let off = log.extents()[0]!.first;
      while (n < max) {
        const got = await log.read(0, off, 1000);
        if (got.length === 0) break;
        n += got.length;
        off += got.length;
      }
      return n;
    },
    close: () => log.close(),
  };
}

async function lmdbEngine(dir: string): Promise<AppendEngine> {
  // separateFlushed: the write promise resolves on commit and its `flushed` on fsync; we wait for both.
  const db = openLmdb<Buffer, number>({
    path: dir,
    encoding: 'binary',
    compression: false,
    separateFlushed: true,
  });
  let next = 0;
  return {
    append: async (b) => {
      if (b.length === 1) {
        const p = db.put(next++, encodeFrame(b).buf);
        await p;
        await (p as unknown as { flushed: Promise<void> }).flushed;
      } else {
        await db.transaction(() => {
          for (const r of b) db.put(next++, encodeFrame([r]).buf);
        });
        await db.flushed;
      }
    },
    readAll: async (max) => {
      let n = 0;
      for (const { key, value } of db.getRange({ start: 0, limit: max })) {
        decodeRecord(value, FRAME_HEADER_BYTES, value.length - FRAME_HEADER_BYTES, 0, key);
        n++;
      }
      return n;
    },
    close: () => db.close(),
  };
}

interface Result {
  recordsPerSec: number;
  p50us: number;
  p99us: number;
  readPerSec: number;
  readRecords: number;
}

async function scenario(
  make: (dir: string) => Promise<AppendEngine>,
  appenders: number,
  batch: number,
): Promise<Result> {
  const dir = await mkdtemp(join(tmpdir(), 'cds-bench-log-'));
  const engine = await make(join(dir, 'data'));
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let records = 0;
  let stop = false;
  const t0 = performance.now();
  const timer = setTimeout(() => (stop = true), SECONDS * 1000);
  await Promise.all(
    Array.from({ length: appenders }, async (_, w) => {
      for (let i = w * batch; !stop; i += appenders * batch) {
        const b: AppendRecord[] = [];
        for (let j = 0; j < batch; j++) b.push(RECORDS[(i + j) % RECORDS.length]!);
        const s = performance.now();
        await engine.append(b);
        h.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
        records += batch;
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  clearTimeout(timer);
  const r0 = performance.now();
  const read = await engine.readAll(READ_MAX);
  const readPerSec = read / ((performance.now() - r0) / 1000);
  await engine.close();
  await rm(dir, { recursive: true, force: true });
  return {
    recordsPerSec: records / elapsed,
    p50us: h.getValueAtPercentile(50),
    p99us: h.getValueAtPercentile(99),
    readPerSec,
    readRecords: read,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const SCENARIOS: [string, (dir: string) => Promise<AppendEngine>, number, number][] = [
  ['segment-log   1 appender  x batch 1  ', segmentEngine, 1, 1],
  ['segment-log  64 appenders x batch 1  ', segmentEngine, 64, 1],
  ['segment-log  64 appenders x batch 100', segmentEngine, 64, 100],
  ['lmdb          1 appender  x batch 1  ', lmdbEngine, 1, 1],
  ['lmdb         64 appenders x batch 1  ', lmdbEngine, 64, 1],
  ['lmdb         64 appenders x batch 100', lmdbEngine, 64, 100],
];

console.log(
  `# ${SECONDS}s per run, ${RUNS} runs, ${RECORDS[0]!.payload.byteLength}-byte payloads, Node ${process.version}`,
);
for (const [name, make, appenders, batch] of SCENARIOS) {
  const rs: Result[] = [];
  for (let r = 0; r < RUNS; r++) {
    const x = await scenario(make, appenders, batch);
    rs.push(x);
    console.log(
      `  run ${r + 1} ${name}: ${Math.round(x.recordsPerSec)} rec/s, p50 ${x.p50us} us, p99 ${x.p99us} us, read ${Math.round(x.readPerSec)} rec/s (${x.readRecords} records)`,
    );
  }
  console.log(
    `median ${name}: ${Math.round(median(rs.map((x) => x.recordsPerSec)))} rec/s append, p50 ${median(rs.map((x) => x.p50us))} us, p99 ${median(rs.map((x) => x.p99us))} us, read ${Math.round(median(rs.map((x) => x.readPerSec)))} rec/s`,
  );
}
