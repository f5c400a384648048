/**
 * SIGKILL while retention runs under publishing (ADR 0017), again and again on one data directory
 * with 64 KiB segments and a retention run every 100 ms: an age policy (`wait`) lets old decisions
 * go while a durable subscription, consumed in some iterations and not in others, holds back what it
 * has not acknowledged. After each restart:
 * - every acknowledged decision at or after the log's first offset is there exactly once, with its
 *   body and its acknowledged position; every one before it is gone from GET and from the query, and
 *   was old enough for its policy to let it go;
 * - nothing is corrupt: the query lists no decision twice, nothing below the first offset, nothing
 *   never sent;
 * - the subscription's durable ack floor is not below the log's first offset (nothing it still needed
 *   was removed);
 * and the restart time is printed.
 *
 * CDS_TEST_SEED replays a run; CDS_TEST_RETENTION_CRASH_ITERATIONS changes the count (default 15).
 */
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { test } from 'node:test';
import { createDecisionGenerator, mulberry32, testSeed } from '../helpers/decisions.ts';
import {
  cleanupTempDirs,
  getDecision,
  makeTempDir,
  startServer,
  type ServerHandle,
  type StoredDecision,
} from '../helpers/server.ts';
import { Ledger, mapLimit, median, startPublishers, type PublishRecord } from './load.ts';

const ITERATIONS = Number(process.env['CDS_TEST_RETENTION_CRASH_ITERATIONS'] ?? 15);
const CONCURRENCY = 64;
/** Age after which the policy lets a decision go. */
const AGE_MS = 2000;
const SERVER_ENV = {
  CDS_RATE_REQUESTS_PER_SECOND: '1000000',
  CDS_LOG_LEVEL: 'warn',
  CDS_LOG_SEGMENT_BYTES: String(64 * 1024),
  CDS_RETENTION_INTERVAL_MS: '100',
};
const SUB = 'keeper';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const offsetOf = (pos: string) => Number(pos.split(':')[1]);

async function api(
  s: ServerHandle,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${s.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${s.adminKey}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** Fetches and acknowledges the subscription until stopped (or the server is gone). */
function startConsumer(s: ServerHandle): { stop: () => Promise<number> } {
  let stopped = false;
  let acked = 0;
  const run = (async () => {
    while (!stopped) {
      try {
        const f = await api(s, 'POST', `/v1/subscriptions/${SUB}/fetch`, { max: 200, waitMs: 50 });
        if (f.status !== 200) break;
        const positions = (f.body.deliveries as { position: string }[]).map((d) => d.position);
        if (positions.length > 0) {
          const a = await api(s, 'POST', `/v1/subscriptions/${SUB}/ack`, { positions });
          if (a.status !== 200) break;
          acked += positions.length;
        }
      } catch {
        break; // killed
      }
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await run;
      return acked;
    },
  };
}

/** Every item of GET /v1/decisions, following nextCursor while there is one. */
async function listAll(s: ServerHandle): Promise<StoredDecision[]> {
  const out: StoredDecision[] = [];
  let cursor: string | null = null;
  for (;;) {
    const q = new URLSearchParams({ limit: '1000', ...(cursor === null ? {} : { cursor }) });
    const r = await api(s, 'GET', `/v1/decisions?${q.toString()}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(...r.body.items);
    cursor = r.body.nextCursor;
    if (cursor === null) return out;
  }
}

test('retention under publishing survives SIGKILL at random moments', { timeout: 600_000 }, async (t) => {
  const seed = testSeed('retention-crash');
  const rand = mulberry32(seed);
  const dataDir = makeTempDir('cds-retention-crash-');
  const ledger = new Ledger();
  /** decisionId -> wall time its publish was sent (ms since the epoch). */
  const sentAt = new Map<string, number>();
  const restartMs: number[] = [];
  let server = await startServer({ dataDir, env: SERVER_ENV });
  const adminKey = server.adminKey;
  const where = (i: number) => `seed ${seed}, iteration ${i}, data dir ${dataDir}`;
  let trimmedTotal = 0;
  try {
    const sub = await api(server, 'POST', '/v1/subscriptions', {
      name: SUB,
      topics: ['decisions.*.pf-1', 'decisions.*.pf-2'],
      start: 'earliest',
    });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    const pol = await api(server, 'PUT', '/v1/retention-policies/all', {
      pattern: 'decisions.>',
      maxAgeMs: AGE_MS,
      onUnacknowledged: 'wait',
    });
    assert.equal(pol.status, 201, JSON.stringify(pol.body));

    for (let i = 0; i < ITERATIONS; i++) {
      const gen = createDecisionGenerator({ seed: (seed + i) >>> 0, idPrefix: `r${i}`, portfolios: 20 });
      const wallStart = Date.now();
      const pubs = startPublishers({
        url: server.url,
        key: adminKey,
        gen,
        concurrency: CONCURRENCY,
        batchShare: 0.3,
        maxBatch: 8,
      });
      const consuming = rand() < 0.6;
      const consumer = consuming ? startConsumer(server) : undefined;
      const killAfter = 300 + Math.floor(rand() * 1700);
      await sleep(killAfter);
      await server.kill();
      const records: PublishRecord[] = await pubs.stop();
      const acks = (await consumer?.stop()) ?? 0;
      ledger.add(records);
      for (const r of records) for (const d of r.decisions) sentAt.set(d.decisionId, wallStart + r.sentAt);

      server = await startServer({ dataDir, env: SERVER_ENV, adminKey });
      restartMs.push(server.startMs);
      const checkAt = Date.now();
      const status = await api(server, 'GET', '/v1/status');
      const ext = status.body.log.partitions[0] as { first: number; next: number };
      // The check reads while retention goes on: decisions it removes meanwhile are old enough too.
      const problems: string[] = [];
      const acked = [...ledger.acked];
      const kept = acked.filter(([, pos]) => offsetOf(pos) >= ext.first);
      const gone = acked.filter(([, pos]) => offsetOf(pos) < ext.first);
      for (const [id] of gone) {
        const sent = sentAt.get(id) ?? 0;
        if (sent >= checkAt - AGE_MS)
          problems.push(`${id} removed though sent ${checkAt - sent} ms before the check`);
      }
      let removedMeanwhile = 0;
      await mapLimit(kept, 32, async ([id, pos]) => {
        const g = await getDecision(server.url, adminKey, id);
        if (g.status === 404) {
          // Removed since the status was read: only if its policy let it go by now.
          const firstNow = (await api(server, 'GET', '/v1/status')).body.log.partitions[0].first as number;
          if (offsetOf(pos) < firstNow && (sentAt.get(id) ?? 0) < Date.now() - AGE_MS) removedMeanwhile++;
          else problems.push(`acknowledged ${id} at ${pos} missing (first ${firstNow})`);
          return;
        }
        if (g.status !== 200) return problems.push(`GET ${id}: ${g.status} ${JSON.stringify(g.body)}`);
        const s = g.body as StoredDecision;
        if (s.position !== pos) problems.push(`${id} at ${s.position}, acknowledged at ${pos}`);
        if (!isDeepStrictEqual(s.decision, ledger.sent.get(id)))
          problems.push(`${id} stored differs from sent`);
      });
      for (const [id] of gone.slice(-20)) {
        const g = await getDecision(server.url, adminKey, id);
        if (g.status !== 404) problems.push(`${id} below the first offset answered ${g.status}`);
      }
      const listed = await listAll(server);
      const firstAfterList = (await api(server, 'GET', '/v1/status')).body.log.partitions[0].first as number;
      const seen = new Set<string>();
      for (const it of listed) {
        if (seen.has(it.decisionId)) problems.push(`query returned ${it.decisionId} twice`);
        seen.add(it.decisionId);
        if (!ledger.sent.has(it.decisionId)) problems.push(`query returned ${it.decisionId}, never sent`);
        if (offsetOf(it.position) < ext.first)
          problems.push(`query returned ${it.position}, below first ${ext.first}`);
      }
      for (const [id, pos] of kept)
        if (!seen.has(id) && offsetOf(pos) >= firstAfterList) problems.push(`query lacks acknowledged ${id}`);
      const stats = await api(server, 'GET', `/v1/subscriptions/${SUB}/stats`);
      const floor = stats.body.cursors[0].ackFloor as number;
      if (floor < ext.first)
        problems.push(`subscription ack floor ${floor} below the first offset ${ext.first}`);
      trimmedTotal = ext.first;
      t.diagnostic(
        `#${i} kill after ${killAfter} ms (${consuming ? `consumer acked ${acks}` : 'no consumer'}); ` +
          `${records.length} requests, acknowledged ${ledger.acked.size} in all; log [${ext.first}, ${ext.next}), ` +
          `${kept.length} kept checked, ${gone.length} removed, ${removedMeanwhile} removed during the check; ` +
          `subscription floor ${floor}; restart ${server.startMs.toFixed(0)} ms`,
      );
      assert.deepEqual(problems.slice(0, 20), [], where(i));
    }
    t.diagnostic(
      `restart ms: median ${median(restartMs).toFixed(0)}, min ${Math.min(...restartMs).toFixed(0)}, ` +
        `max ${Math.max(...restartMs).toFixed(0)}; retention removed ${trimmedTotal} records in all`,
    );
    assert.ok(trimmedTotal > 0, `retention removed nothing; seed ${seed}`);
  } finally {
    await server.kill();
  }
  cleanupTempDirs();
});
