/**
 * SIGKILL under load, again and again on one data directory: after each restart every
 * acknowledged publish is there exactly once at its acknowledged position, and every other one is
 * absent or complete (DESIGN 5: acknowledged only once durable; a batch is atomic).
 *
 * CDS_TEST_SEED replays a run; CDS_TEST_CRASH_ITERATIONS changes the count (default 20).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDecisionGenerator, mulberry32, testSeed } from '../helpers/decisions.ts';
import { cleanupTempDirs, makeTempDir, publish, startServer, type PublishAck } from '../helpers/server.ts';
import { checkByGet, checkByQuery, Ledger, median, startPublishers } from './load.ts';

const ITERATIONS = Number(process.env['CDS_TEST_CRASH_ITERATIONS'] ?? 20);
/** The full paginated count runs after these iterations (it grows with the data). */
const FULL_CHECK_EVERY = Number(process.env['CDS_TEST_CRASH_FULL_EVERY'] ?? 4);
const CONCURRENCY = 128;
/** No rate limit may refuse the test's own load. */
const SERVER_ENV = { CDS_RATE_REQUESTS_PER_SECOND: '1000000', CDS_LOG_LEVEL: 'warn' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('acknowledged publishes survive SIGKILL at random moments', { timeout: 300_000 }, async (t) => {
  const seed = testSeed('publish-crash');
  const rand = mulberry32(seed);
  const dataDir = makeTempDir('cds-crash-');
  const ledger = new Ledger();
  const restartMs: number[] = [];
  let server = await startServer({ dataDir, env: SERVER_ENV });
  const adminKey = server.adminKey;
  const where = (i: number) => `seed ${seed}, iteration ${i}, data dir ${dataDir}`;
  try {
    for (let i = 0; i < ITERATIONS; i++) {
      const gen = createDecisionGenerator({ seed: (seed + i) >>> 0, idPrefix: `k${i}`, portfolios: 40 });
      const pubs = startPublishers({
        url: server.url,
        key: adminKey,
        gen,
        concurrency: CONCURRENCY,
        batchShare: 0.3,
        maxBatch: 8,
      });
      const killAfter = 100 + Math.floor(rand() * 1400);
      await sleep(killAfter);
      const inFlightAtKill = pubs.inFlight();
      await server.kill();
      const records = await pubs.stop();
      ledger.add(records);

      server = await startServer({ dataDir, env: SERVER_ENV, adminKey });
      restartMs.push(server.startMs);
      const got = await checkByGet(server.url, adminKey, records, ledger);
      const full = (i + 1) % FULL_CHECK_EVERY === 0 || i === ITERATIONS - 1;
      const listed = full ? await checkByQuery(server.url, adminKey, ledger) : -1;

      // Publishing an acknowledged decision again is a duplicate at the same position.
      const again = records.find((r) => r.outcome.kind === 'acked' && !r.batch);
      if (again !== undefined) {
        const res = await publish(server.url, adminKey, again.decisions[0]!);
        const ack = res.body as PublishAck;
        const pos = ledger.acked.get(again.decisions[0]!.decisionId);
        if (res.status !== 200 || ack.duplicate !== true || ack.position !== pos) {
          ledger.problems.push(
            `re-publish of ${again.decisions[0]!.decisionId}: ${res.status} ${JSON.stringify(res.body)}`,
          );
        }
      }

      const refused = records
        .filter((r) => r.outcome.kind === 'http')
        .map((r) => (r.outcome as { status: number }).status);
      t.diagnostic(
        `#${i} kill after ${killAfter} ms, ${inFlightAtKill} in flight (peak ${pubs.peakInFlight()}); ` +
          `${records.length} requests: acked ${got.acked}, unacked present ${got.unackedPresent} / absent ${got.unackedAbsent}` +
          `${refused.length ? `, http errors ${[...new Set(refused)].join(',')}` : ''}; ` +
          `restart ${server.startMs.toFixed(0)} ms${full ? `; query lists ${listed}` : ''}`,
      );
      assert.ok(
        pubs.peakInFlight() >= 100,
        `fewer than 100 publishes in flight (${pubs.peakInFlight()}); ${where(i)}`,
      );
      assert.deepEqual(ledger.problems.slice(0, 20), [], `${where(i)}`);
    }
    t.diagnostic(
      `restart ms: median ${median(restartMs).toFixed(0)}, min ${Math.min(...restartMs).toFixed(0)}, ` +
        `max ${Math.max(...restartMs).toFixed(0)}; acknowledged ${ledger.acked.size}, stored ${ledger.expectedCount()}`,
    );
    assert.ok(ledger.acked.size > 0, `nothing was acknowledged; seed ${seed}`);
  } finally {
    await server.kill();
  }
  cleanupTempDirs();
});
