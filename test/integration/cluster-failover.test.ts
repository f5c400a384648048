/**
 * Cluster mode with two instances on one PostgreSQL database and one shared log (ADR 0015): both
 * apps run in this process on one SegmentLog, which stands in for the shared Pulsar log (the
 * two-process SIGKILL test on Pulsar comes with the Pulsar adapter). Instance A reaches PostgreSQL
 * through a TCP proxy, so that the test can cut A off (a silent partition: its statements hang).
 *
 * - Subscriptions spread over the two; a WebSocket or gRPC consumer that connects to the instance not
 *   dispatching its subscription is redirected (NOT_OWNER) to the one that does.
 * - Under a steady load, A is cut off from PostgreSQL: it stops dispatching before its leases can
 *   expire (its consumers are closed), B takes them over after they expired, the consumers follow;
 *   then B is stopped (gracefully) and A, reconnected, takes everything. Every consumer ends with every
 *   decision, first receipts in per-key order, and no subscription was ever dispatched by both at once
 *   (the receipts of a subscription, in time order, never go back to an instance it left).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { SegmentLog } from '../../src/adapters/embedded/log/index.ts';
import { GrpcSubscriber } from '../../src/client/grpc.ts';
import { Subscriber } from '../../src/client/index.ts';
import {
  checkReceipts,
  CLUSTER_ADMIN_KEY,
  consumerGroups,
  createSpread,
  leaseOwners,
  missing,
  request,
  shared,
  startInstance,
  type Instance,
  type Receipt,
  within,
} from '../helpers/cluster.ts';
import { makeDecision } from '../helpers/decisions.ts';

/** A decision of a key that does not expire. */
const decision = (decisionId: string, portfolioId: string) =>
  makeDecision(0, { decisionId, portfolioId, expiresAt: undefined });
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const LEASE_MS = 1500;
const RENEW_MS = 300;

/** A TCP proxy that can hold every connection (a silent network partition) and release them. */
class PgProxy {
  readonly pairs = new Set<{ c: Socket; u: Socket }>();
  held = false;
  port = 0;
  readonly server: Server = createServer((c) => {
    const u = connect(this.targetPort, this.host);
    const pair = { c, u };
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      c.destroy();
      u.destroy();
    };
    c.on('error', drop).on('close', drop);
    u.on('error', drop).on('close', drop);
    if (this.held) {
      c.pause();
      u.pause();
    } else {
      c.pipe(u);
      u.pipe(c);
    }
  });

  constructor(
    private readonly host: string,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  /** Stops forwarding, in both directions, on every connection (new ones too). */
  hold(): void {
    this.held = true;
    for (const { c, u } of this.pairs) {
      c.unpipe(u);
      u.unpipe(c);
      c.pause();
      u.pause();
    }
  }

  /** Forwards again (what was sent meanwhile flows on). */
  heal(): void {
    this.held = false;
    for (const { c, u } of this.pairs) {
      c.pipe(u);
      u.pipe(c);
    }
  }

  async close(): Promise<void> {
    for (const { c, u } of this.pairs) {
      c.destroy();
      u.destroy();
    }
    await new Promise((r) => this.server.close(r));
  }
}

const started = await startPostgres();

if ('skipped' in started) {
  it('cluster failover on PostgreSQL', { skip: started.skipped }, () => {});
} else {
  const db = started as TestPostgres;
  describe('two instances on one PostgreSQL database and one shared log', () => {
    let proxy: PgProxy;
    let log: SegmentLog;
    let logDir: string;
    let a: Instance;
    let b: Instance;
    const names = ['c-one', 'c-two', 'c-three', 'c-four'];
    const owners = () => leaseOwners(db.url);

    before(async () => {
      const u = new URL(db.url);
      proxy = await new PgProxy(u.hostname, Number(u.port)).start();
      const viaProxy = new URL(db.url);
      viaProxy.port = String(proxy.port);
      logDir = mkdtempSync(join(tmpdir(), 'cds-shared-log-'));
      log = await SegmentLog.open(logDir);
      a = await startInstance(viaProxy.toString(), shared(log), { leaseMs: LEASE_MS, renewMs: RENEW_MS });
      b = await startInstance(db.url, shared(log), { leaseMs: LEASE_MS, renewMs: RENEW_MS });
    });
    after(async () => {
      proxy?.heal();
      await a?.app.close();
      await b?.app.close();
      await log?.close();
      await proxy?.close();
      for (const d of [a?.dataDir, b?.dataDir, logDir]) if (d) rmSync(d, { recursive: true, force: true });
      await db.stop();
    });

    it('subscriptions spread over both; a consumer of the other instance is redirected (WebSocket and gRPC)', async () => {
      await createSpread(db.url, a, names);
      const o = await owners();
      const onB = names.find((n) => o.get(n) === b.url) as string;
      const view = await request(a, 'GET', `/v1/subscriptions/${onB}`);
      assert.equal(view.body.status.owner.url, b.url, JSON.stringify(view.body.status));
      const pull = await request(a, 'POST', `/v1/subscriptions/${onB}/fetch`, { max: 1 });
      assert.equal(pull.status, 421);
      assert.equal(pull.body.error.code, 'NOT_OWNER');
      assert.equal(pull.body.error.details.owner.url, b.url);

      const ws = new Subscriber({ url: a.url, apiKey: CLUSTER_ADMIN_KEY, subscription: onB, credits: 100 });
      const grpc = new GrpcSubscriber({ address: a.grpc, token: CLUSTER_ADMIN_KEY, subscription: onB });
      try {
        const wsEvents: string[] = [];
        let connectedTo = '';
        while (connectedTo === '') {
          const e = await ws.next(5000);
          assert.ok(e, 'an event');
          wsEvents.push(e.type === 'error' ? e.error.code : e.type);
          if (e.type === 'connected') connectedTo = e.url;
        }
        assert.equal(connectedTo, b.url);
        assert.ok(wsEvents.includes('NOT_OWNER'), wsEvents.join(','));
        const g = grpc[Symbol.asyncIterator]();
        let redirected = false;
        for (;;) {
          const e = (await g.next()).value;
          if (e.type === 'reconnecting') redirected ||= e.error.code === 'NOT_OWNER';
          if (e.type === 'subscribed') break;
          assert.notEqual(e.type, 'closed');
        }
        assert.ok(redirected, 'the gRPC session was redirected');
        const batch = Array.from({ length: 10 }, (_, i) => decision(`redirect-${i}`, `pf-${i}`));
        assert.equal((await request(a, 'POST', '/v1/decisions', batch)).status, 200);
        // The two consumers form a consumer group on B: together they get all ten.
        const got = new Set<string>();
        void (async () => {
          for (;;) {
            const { value, done } = await g.next();
            if (done === true || value.type === 'closed') return;
            if (value.type !== 'deliveries') continue;
            for (const d of value.deliveries) got.add(d.position);
            grpc.ack(value.deliveries.map((d) => d.position));
          }
        })();
        const deadline = Date.now() + 5000;
        while (got.size < 10 && Date.now() < deadline) {
          const e = await ws.next(50);
          if (e?.type === 'deliveries') for (const d of e.deliveries) got.add(d.position);
        }
        assert.equal(got.size, 10);
      } finally {
        ws.close();
        grpc.close();
      }
    });

    it('A cut off from PostgreSQL stops dispatching before its leases expire; B takes over; then B stops and A takes all: nothing lost, per-key order, one dispatcher at a time', async () => {
      const { receipts, subs, events } = consumerGroups(names, [a.url, b.url]);
      const firstOwner = new Map<string, string>();
      const published: string[] = [];
      let publishing = true;
      let seq = 0;
      // Publishes go through B until it stops, then through A (A's publish path needs PostgreSQL too).
      let via = b;
      const load = (async () => {
        while (publishing) {
          const batch = Array.from({ length: 5 }, () => decision(`load-${seq}`, `pf-${seq++ % 8}`));
          const r = await request(via, 'POST', '/v1/decisions', batch);
          if (r.status === 200) published.push(...batch.map((d) => d.decisionId));
          await sleep(10);
        }
      })();
      try {
        await sleep(800);
        const before = await owners();
        for (const [n, u] of before) firstOwner.set(n, u);
        const fromA = names.filter((n) => before.get(n) === a.url);
        assert.equal(fromA.length, 2, 'A dispatches two subscriptions');
        const cutAt = performance.now();
        proxy.hold();
        // B takes A's subscriptions once their leases expired in PostgreSQL.
        await within(LEASE_MS * 4, "B takes A's subscriptions", async () => {
          const o = await owners();
          return names.every((n) => o.get(n) === b.url);
        });
        await sleep(800);
        // A's consumers were closed (NOT_OWNER, 4020) before A's leases could expire.
        const closedAtA = events
          .filter((e) => e.startsWith(`disconnected 4020 ${a.url}`))
          .map((e) => Number(e.split(' ')[3]));
        assert.ok(closedAtA.length > 0, events.join('\n'));
        assert.ok(
          Math.min(...closedAtA) < cutAt + LEASE_MS,
          `stopped ${Math.min(...closedAtA) - cutAt} ms after the cut`,
        );
        proxy.heal();
        await sleep(500);
        via = a;
        await sleep(100);
        await b.app.close(); // graceful: its leases are released after its last commit
        await within(LEASE_MS * 4, 'A takes every subscription', async () => {
          const o = await owners();
          return names.every((n) => o.get(n) === a.url);
        });
        await sleep(500);
      } finally {
        publishing = false;
        await load;
      }
      await within(15_000, 'every consumer group has every decision', () =>
        missing(receipts, published).every((m) => m === 0),
      ).catch((e: Error) => {
        const left = missing(receipts, published).join(', ');
        throw new Error(`${e.message}: missing ${left} of ${published.length}\n${events.join('\n')}`);
      });
      for (const s of subs) s.close();
      assert.ok(published.length > 200, `${published.length} decisions published`);
      for (const n of names)
        checkReceipts(n, receipts.get(n) as Receipt[], [firstOwner.get(n) as string, b.url, a.url]);
    });
  });
}
