/**
 * SIGKILL at random moments during DELIVERY (issue 6 item 6): publishers run while two WebSocket
 * subscribers of one durable subscription (a consumer group) consume and acknowledge; the service is
 * killed, restarted on the same data directory, and the subscribers reconnect. After each restart
 * every acknowledged publish is there exactly once at its position, and redeliveries are only of
 * deliveries that were not acknowledged, or acknowledged within the last cursor-commit interval
 * before the kill (acks are committed in batches, ADR 0009): the subscription resumed from its
 * committed cursor. At the end the subscribers have every stored decision, and each connection got
 * each key's first deliveries in position order.
 *
 * CDS_TEST_SEED replays a run; CDS_TEST_DELIVERY_CRASH_ITERATIONS changes the count (default 15).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Subscriber, type Delivery } from '../../src/client/index.ts';
import type { Decision } from '../../src/domain/decision.ts';
import {
  createDecisionGenerator,
  mulberry32,
  testSeed,
  type DecisionGenerator,
} from '../helpers/decisions.ts';
import { cleanupTempDirs, makeTempDir, startServer, type ServerHandle } from '../helpers/server.ts';
import { checkByGet, checkByQuery, Ledger, median, startPublishers } from './load.ts';

const ITERATIONS = Number(process.env['CDS_TEST_DELIVERY_CRASH_ITERATIONS'] ?? 15);
const SERVER_ENV = { CDS_RATE_REQUESTS_PER_SECOND: '1000000', CDS_LOG_LEVEL: 'warn' };
/** An ack confirmed this long before a kill is in a committed cursor (commits every 200 ms). */
const COMMIT_SLACK_MS = 1000;
const SUBSCRIPTION = 'crash-delivery';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Decisions without the kinds that overtake their key (halt, cancel: DESIGN 5), so key order is plain. */
function plainGenerator(g: DecisionGenerator): DecisionGenerator {
  const next = (): Decision => {
    for (;;) {
      const d = g.next();
      if (d.type !== 'halt' && d.type !== 'cancel') return d;
    }
  };
  return { seed: g.seed, rand: g.rand, next, take: (n) => Array.from({ length: n }, next) };
}

/** One delivery as a connection received it. */
interface Got {
  readonly conn: number;
  readonly d: Delivery;
  /** performance.now() when it arrived. */
  readonly at: number;
}

/** Consumers that acknowledge what they get, recording deliveries and confirmed acks with their time. */
class Consumers {
  readonly got: Got[] = [];
  /** position -> performance.now() when its first ack that the service confirmed was sent. */
  readonly acked = new Map<string, number>();
  #subs: Subscriber[] = [];
  #loops: Promise<void>[] = [];
  #conn = 0;
  #running = false;

  start(url: string, key: string, n: number): void {
    this.#running = true;
    for (let i = 0; i < n; i++) {
      const conn = ++this.#conn;
      const s = new Subscriber({
        url,
        apiKey: key,
        subscription: SUBSCRIPTION,
        credits: 200,
        reconnect: false,
      });
      this.#subs.push(s);
      this.#loops.push(
        (async () => {
          while (this.#running) {
            const e = await s.next(100);
            if (e === undefined) continue;
            if (e.type === 'disconnected') return;
            if (e.type !== 'deliveries') continue;
            const at = performance.now();
            for (const d of e.deliveries) this.got.push({ conn, d, at });
            const positions = e.deliveries.map((d) => d.position);
            const sentAt = performance.now();
            void s.ack(positions).then((results) => {
              for (const r of results)
                if (r.ok && !this.acked.has(r.position)) this.acked.set(r.position, sentAt);
            });
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    for (const s of this.#subs) s.close();
    await Promise.all(this.#loops);
    this.#subs = [];
    this.#loops = [];
  }
}

test(
  'delivery survives SIGKILL at random moments: resume from the committed cursor, nothing lost',
  { timeout: 600_000 },
  async (t) => {
    const seed = testSeed('delivery-crash');
    const rand = mulberry32(seed);
    const dataDir = makeTempDir('cds-delivery-crash-');
    const ledger = new Ledger();
    const consumers = new Consumers();
    const restartMs: number[] = [];
    /** performance.now() when each kill was decided and when the process was gone, in order. */
    const kills: { start: number; end: number }[] = [];
    let server: ServerHandle = await startServer({ dataDir, env: SERVER_ENV });
    const adminKey = server.adminKey;
    const where = (i: number) => `seed ${seed}, iteration ${i}, data dir ${dataDir}`;
    try {
      const created = await fetch(`${server.url}/v1/subscriptions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          name: SUBSCRIPTION,
          topics: ['decisions.>'],
          start: 'earliest',
          includeExpired: true,
        }),
      });
      assert.equal(created.status, 201, await created.text());
      for (let i = 0; i < ITERATIONS; i++) {
        const gen = plainGenerator(
          createDecisionGenerator({ seed: (seed + i) >>> 0, idPrefix: `d${i}`, portfolios: 30 }),
        );
        consumers.start(server.url, adminKey, 2);
        const pubs = startPublishers({
          url: server.url,
          key: adminKey,
          gen,
          concurrency: 16,
          batchShare: 0.3,
          maxBatch: 8,
        });
        const killAfter = 300 + Math.floor(rand() * 1200);
        await sleep(killAfter);
        const deliveredAtKill = consumers.got.length;
        const killStart = performance.now();
        await server.kill();
        kills.push({ start: killStart, end: performance.now() });
        const records = await pubs.stop();
        await consumers.stop();
        ledger.add(records);

        server = await startServer({ dataDir, env: SERVER_ENV, adminKey });
        restartMs.push(server.startMs);
        const got = await checkByGet(server.url, adminKey, records, ledger);
        t.diagnostic(
          `#${i} kill after ${killAfter} ms: ${records.length} publishes (acked ${got.acked}), ` +
            `${deliveredAtKill} deliveries so far, ${consumers.acked.size} acked; restart ${server.startMs.toFixed(0)} ms`,
        );
        assert.deepEqual(ledger.problems.slice(0, 20), [], where(i));
      }

      // The last run: consume until every stored decision came (what was pending at the last kill too).
      consumers.start(server.url, adminKey, 2);
      await checkByQuery(server.url, adminKey, ledger);
      assert.deepEqual(ledger.problems.slice(0, 20), [], `seed ${seed}: after the last restart`);
      const stored = new Set([...ledger.acked.keys(), ...ledger.presentUnacked]);
      const idOf = (d: Delivery) => (d.decision as { decisionId: string }).decisionId;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const have = new Set(consumers.got.map((g) => idOf(g.d)));
        const missing = [...stored].filter((id) => !have.has(id));
        if (missing.length === 0) break;
        assert.ok(
          Date.now() < deadline,
          `seed ${seed}: ${missing.length} stored decisions never delivered, e.g. ${missing.slice(0, 5).join(', ')}`,
        );
        await sleep(200);
      }
      await sleep(500); // acks of the last deliveries
      await consumers.stop();

      const problems: string[] = [];
      // Nothing the publishers did not store; one position per decision.
      const positionOf = new Map<string, string>();
      for (const { d } of consumers.got) {
        const id = idOf(d);
        if (!stored.has(id)) problems.push(`delivered ${id}, which is not stored`);
        const p = positionOf.get(id);
        if (p !== undefined && p !== d.position) problems.push(`${id} delivered at ${p} and ${d.position}`);
        positionOf.set(id, d.position);
      }
      // Duplicates only of deliveries not acknowledged before the commit that preceded a kill.
      const firstAt = new Map<string, number>();
      let duplicates = 0;
      consumers.got.forEach(({ d }, i) => {
        const first = firstAt.get(d.position);
        if (first === undefined) return void firstAt.set(d.position, i);
        duplicates++;
      });
      const again = consumers.got.filter(({ d }, i) => firstAt.get(d.position) !== i);
      for (const { d, at } of again) {
        const ackedAt = consumers.acked.get(d.position);
        if (ackedAt === undefined || ackedAt > at) continue; // not acknowledged before it came again
        // Acknowledged, then delivered again: only through a kill that came within the commit slack.
        // (An ack sent while the kill was under way may have been confirmed and not committed.)
        const kill = kills.find((k) => k.end >= ackedAt);
        if (kill === undefined || kill.end > at || kill.start - ackedAt > COMMIT_SLACK_MS)
          problems.push(
            `${d.position} acknowledged, delivered again ${kill === undefined || kill.end > at ? 'without a kill between' : `after a kill ${(kill.start - ackedAt).toFixed(0)} ms after the ack`}`,
          );
      }
      const redelivered = new Set(again.map(({ d }) => d.position));
      // Per connection, each key's first deliveries in position order.
      const last = new Map<string, number>();
      for (const { conn, d } of consumers.got) {
        if (d.deliveryCount > 1) continue;
        const k = `${conn}/${d.key}`;
        const off = Number(d.position.split(':')[1]);
        const prev = last.get(k);
        if (prev !== undefined && off <= prev)
          problems.push(`connection ${conn} got ${d.position} of key ${d.key} after offset ${prev}`);
        last.set(k, off);
      }
      t.diagnostic(
        `${ITERATIONS} SIGKILLs; restart ms: median ${median(restartMs).toFixed(0)}, max ${Math.max(...restartMs).toFixed(0)}; ` +
          `stored ${stored.size} decisions, ${consumers.got.length} deliveries (${duplicates} again, of ${redelivered.size} positions), ` +
          `${consumers.acked.size} acknowledged`,
      );
      assert.deepEqual(problems.slice(0, 20), [], `seed ${seed}`);
      assert.ok(consumers.acked.size > 0, `nothing was acknowledged; seed ${seed}`);
    } finally {
      await consumers.stop();
      await server.kill();
    }
    cleanupTempDirs();
  },
);
