/**
 * Retention in cluster mode (ADR 0017, ADR 0015): two instances on one PostgreSQL database and one
 * shared log (a SegmentLog with 64 KiB segments standing in for the shared Pulsar log, as in the other
 * cluster tests; its trim is seen by both at once, like a trim record on Pulsar's commit topic).
 *
 * - `wait`: a subscription dispatched by B, lagging (nothing acknowledged), holds A's retention run at
 *   its committed floor: the log's first offset does not pass it and its consumer afterwards receives
 *   every decision; once it has acknowledged everything (committed), A's next run trims.
 * - `drop`: each instance drops only its own lagging subscription (to the policies' cut, told and
 *   recorded), the other's holding the trim at its committed floor; once both owners have run, the log
 *   is trimmed to where they dropped.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { SegmentLog } from '../../src/adapters/embedded/log/index.ts';
import { PostgresSubscriptionStore } from '../../src/adapters/postgres/index.ts';
import {
  consumer,
  leaseOwners,
  request,
  shared,
  startInstance,
  type Instance,
  type Receipt,
  within,
} from '../helpers/cluster.ts';
import { makeDecision, NEVER_EXPIRES } from '../helpers/decisions.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const CLUSTER = { leaseMs: 1500, renewMs: 300 };

const started = await startPostgres();

if ('skipped' in started) {
  it('retention in cluster mode on PostgreSQL', { skip: started.skipped }, () => {});
} else {
  const db = started as TestPostgres;
  describe('retention with two instances on one shared log', () => {
    let log: SegmentLog;
    let logDir: string;
    let a: Instance;
    let b: Instance;
    let store: PostgresSubscriptionStore;

    before(async () => {
      logDir = mkdtempSync(join(tmpdir(), 'cds-shared-log-'));
      log = await SegmentLog.open(logDir, { segmentBytes: 64 * 1024 });
      a = await startInstance(db.url, shared(log), CLUSTER);
      b = await startInstance(db.url, shared(log), CLUSTER);
      store = await PostgresSubscriptionStore.open(db.url);
    });
    after(async () => {
      await store?.close();
      await a?.app.close();
      await b?.app.close();
      await log?.close();
      for (const d of [a?.dataDir, b?.dataDir, logDir]) if (d) rmSync(d, { recursive: true, force: true });
      await db.stop();
    });

    const first = () => log.extents()[0]!.first;

    /** The committed ack floor of a subscription on partition 0 (first pending, else next). */
    async function committedFloor(name: string): Promise<number> {
      const c = (await store.loadCursors(name)).find((x) => x.partition === 0);
      assert.ok(c, `${name} has a committed cursor`);
      return c.pending[0]?.[0] ?? c.next;
    }

    /** Publishes `n` decisions through `i` (ids `${prefix}-j`); returns their ids. */
    async function publish(i: Instance, prefix: string, n: number): Promise<string[]> {
      const ids: string[] = [];
      for (let j = 0; j < n; j += 50) {
        const batch = [];
        for (let k = j; k < Math.min(n, j + 50); k++) {
          ids.push(`${prefix}-${k}`);
          batch.push(
            makeDecision(k, {
              decisionId: `${prefix}-${k}`,
              portfolioId: `pf-${k % 5}`,
              expiresAt: NEVER_EXPIRES,
            }),
          );
        }
        const r = await request(i, 'POST', '/v1/decisions', batch);
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      return ids;
    }

    /** Creates subscriptions (through A), waits until they are leased, one per instance; their owners. */
    async function subscribe(names: readonly string[], start: string): Promise<Instance[]> {
      for (const name of names) {
        const r = await request(a, 'POST', '/v1/subscriptions', { name, topics: ['decisions.>'], start });
        assert.equal(r.status, 201, JSON.stringify(r.body));
      }
      let urls: (string | undefined)[] = [];
      await within(10_000, `${names.join(', ')} leased, one per instance`, async () => {
        const o = await leaseOwners(db.url);
        urls = names.map((n) => o.get(n));
        return urls.every((u) => u !== undefined) && new Set(urls).size === urls.length;
      });
      return urls.map((u) => (u === a.url ? a : b));
    }

    async function policy(body: Record<string, unknown>): Promise<void> {
      const r = await request(a, 'PUT', '/v1/retention-policies/all', body);
      assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
    }

    it('wait: a subscription dispatched by the other instance holds the trim at its committed floor', async () => {
      const [owner] = (await subscribe(['lagging'], 'earliest')) as [Instance];
      const other = owner === a ? b : a;
      const ids = await publish(other, 'w', 600);
      await policy({ pattern: 'decisions.>', maxAgeMs: 0, onUnacknowledged: 'wait' });
      assert.equal(await committedFloor('lagging'), 0);

      const run = (await other.app.ctx.retention.run(Date.now() + 1)).partitions[0]!;
      assert.equal(run.policyCut, 600, 'the policy alone lets everything go');
      assert.equal(
        first(),
        0,
        `trimmed to ${first()}, past the committed floor 0 of the other's subscription`,
      );
      assert.equal(run.firstAfter, 0);
      assert.deepEqual(run.waitingFor, [{ subscription: 'lagging', offset: 0 }]);
      assert.deepEqual(run.lost, []);

      // Its consumer (sent to the owner) still receives every decision.
      const receipts: Receipt[] = [];
      const s = consumer('lagging', [other.url, owner.url], receipts, []);
      try {
        await within(
          15_000,
          'every decision received',
          () => new Set(receipts.map((r) => r.decisionId)).size === ids.length,
        );
        assert.ok(receipts.every((r) => r.url === owner.url));
        // Acknowledged and committed by the owner: the other's next run trims (whole segments).
        await within(5000, 'the acks committed', async () => (await committedFloor('lagging')) === 600);
      } finally {
        s.close();
      }
      const again = (await other.app.ctx.retention.run(Date.now() + 1)).partitions[0]!;
      assert.deepEqual(again.waitingFor, []);
      assert.ok(first() > 400 && first() <= 600, `first ${first()}`);
      assert.equal((await request(a, 'DELETE', '/v1/subscriptions/lagging')).status, 204);
    });

    it('drop: each owner drops its own lagging subscription; the log is trimmed once both have', async () => {
      const [x, y] = (await subscribe(['drop-x', 'drop-y'], 'latest')) as [Instance, Instance];
      const from = log.extents()[0]!.next;
      await publish(a, 'd', 400);
      await policy({ pattern: 'decisions.>', maxAgeMs: 0, onUnacknowledged: 'drop' });
      await within(5000, 'both cursors committed', async () => {
        return (await committedFloor('drop-x')) === from && (await committedFloor('drop-y')) === from;
      });

      // x drops drop-x to the policies' trim point (told, recorded, cursor moved) but trims nothing
      // past drop-y, which only y may drop.
      const rx = (await x.app.ctx.retention.run(Date.now() + 1)).partitions[0]!;
      const point = log.trimPoint(0, rx.policyCut);
      assert.ok(point > from, `the policies let a whole segment after ${from} go (${point})`);
      assert.deepEqual(
        rx.lost.map((l) => [l.subscription, l.from, l.to]),
        [['drop-x', from, point]],
      );
      assert.deepEqual(rx.waitingFor, [{ subscription: 'drop-y', offset: from }]);
      assert.ok(first() <= from, `trimmed to ${first()}, past drop-y's floor ${from}`);
      assert.ok((await committedFloor('drop-x')) >= point, 'drop-x committed past its loss');

      // y drops drop-y; drop-x (committed at the point) no longer holds: the log is trimmed there.
      const ry = (await y.app.ctx.retention.run(Date.now() + 1)).partitions[0]!;
      assert.deepEqual(
        ry.lost.map((l) => [l.subscription, l.from, l.to]),
        [['drop-y', from, point]],
      );
      assert.equal(first(), point);
      assert.equal(ry.firstAfter, point);
      for (const [i, name] of [
        [x, 'drop-x'],
        [y, 'drop-y'],
      ] as const) {
        const stats = await request(i, 'GET', `/v1/subscriptions/${name}/stats`);
        assert.equal(stats.status, 200, JSON.stringify(stats.body));
        assert.ok(stats.body.retentionLost.pending > 0, JSON.stringify(stats.body.retentionLost));
      }
    });
  });

  describe('a loss commit refused because the lease moved', () => {
    it('the instance that dropped the subscription does not trim past its stored cursor', async () => {
      const db2 = (await startPostgres()) as TestPostgres;
      const dir = mkdtempSync(join(tmpdir(), 'cds-shared-log-'));
      const log = await SegmentLog.open(dir, { segmentBytes: 64 * 1024 });
      // Renewals every 20 s: the instance learns of the lease's move long after the run below.
      const x = await startInstance(db2.url, shared(log), { leaseMs: 60_000, renewMs: 20_000 });
      const store = await PostgresSubscriptionStore.open(db2.url);
      const sql = new pg.Client({ connectionString: db2.url });
      await sql.connect();
      try {
        const name = 'stale';
        const r = await request(x, 'POST', '/v1/subscriptions', {
          name,
          topics: ['decisions.>'],
          start: 'earliest',
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        await within(10_000, 'leased', async () => (await leaseOwners(db2.url)).get(name) === x.url);
        for (let j = 0; j < 400; j += 50) {
          const batch = Array.from({ length: 50 }, (_, k) =>
            makeDecision(j + k, { decisionId: `s-${j + k}`, expiresAt: NEVER_EXPIRES }),
          );
          assert.equal((await request(x, 'POST', '/v1/decisions', batch)).status, 200);
        }
        const put = await request(x, 'PUT', '/v1/retention-policies/all', {
          pattern: 'decisions.>',
          maxAgeMs: 0,
          onUnacknowledged: 'drop',
        });
        assert.equal(put.status, 201, JSON.stringify(put.body));
        // Another owner takes the lease (a new token); x still runs the subscription.
        await sql.query(
          `UPDATE cds_leases SET owner = 'another', token = nextval('cds_lease_tokens'),
             acquired_at = clock_timestamp(), expires_at = clock_timestamp() + interval '1 hour'
           WHERE name = $1`,
          [name],
        );
        const run = (await x.app.ctx.retention.run(Date.now() + 1)).partitions[0]!;
        const c = (await store.loadCursors(name))[0]!;
        const stored = c.pending[0]?.[0] ?? c.next;
        assert.deepEqual(
          run.lost.map((l) => l.subscription),
          [name],
          'x dropped it (it did not know of the move)',
        );
        assert.ok(run.lost[0]!.to > stored, `the drop went to ${run.lost[0]!.to}, the store kept ${stored}`);
        const first = log.extents()[0]!.first;
        assert.ok(
          first <= stored,
          `trimmed to ${first} past the stored cursor ${stored} the new owner resumes from`,
        );
        assert.ok(run.waitingFor.some((w) => w.subscription === name && w.offset === stored));
      } finally {
        await sql.end();
        await store.close();
        await x.app.close();
        await log.close();
        rmSync(dir, { recursive: true, force: true });
        rmSync(x.dataDir, { recursive: true, force: true });
        await db2.stop();
      }
    });
  });
}
