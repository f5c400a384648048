/**
 * The PostgreSQL SubscriptionStore against a real server (test/helpers/postgres.ts): the port's
 * contract unchanged, then what a shared database adds (two store instances, one commit of many).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import {
  PostgresChangeFeed,
  PostgresLeaseStore,
  PostgresSubscriptionStore,
} from '../../src/adapters/postgres/index.ts';
import type { StateChange } from '../../src/adapters/postgres/index.ts';
import { isCdsError } from '../../src/errors/index.ts';
import type { CursorSnapshot } from '../../src/state/subscriptions-port.ts';
import { subscriptionStoreContract } from '../../src/state/subscriptions-contract.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const started = await startPostgres();

if ('skipped' in started) {
  it('PostgreSQL SubscriptionStore', { skip: started.skipped }, () => {});
} else {
  const server = started as TestPostgres;
  after(() => server.stop());

  subscriptionStoreContract('postgres', async () => {
    const db = await startPostgres();
    if ('skipped' in db) throw new Error(db.skipped);
    return {
      store: await PostgresSubscriptionStore.open(db.url),
      leases: await PostgresLeaseStore.open(db.url),
      reopen: () => PostgresSubscriptionStore.open(db.url),
      cleanup: () => db.stop(),
    };
  });

  describe('PostgreSQL SubscriptionStore: what a shared database adds', () => {
    it('two instances creating one name: one wins, the other gets ALREADY_EXISTS; a 200-subscription commit is one write', async () => {
      const a = await PostgresSubscriptionStore.open(server.url);
      const b = await PostgresSubscriptionStore.open(server.url);
      try {
        const at = new Date().toISOString();
        const rec = { name: 'race', version: 1, spec: { topics: ['a'] }, createdAt: at, updatedAt: at };
        const outcomes = await Promise.allSettled([a.put(rec, 0), b.put(rec, 0)]);
        assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
        const lost = outcomes.find((o) => o.status === 'rejected');
        assert.ok(lost && isCdsError(lost.reason) && lost.reason.code === 'ALREADY_EXISTS');

        const names = Array.from({ length: 200 }, (_, i) => `many-${String(i).padStart(3, '0')}`);
        for (const n of names) await a.put({ ...rec, name: n }, 0);
        const snap = (i: number): CursorSnapshot[] =>
          [0, 1, 2, 3].map((partition) => ({
            partition,
            next: 1000 + i,
            pending: [[990 + i, 1]],
            anchors: [[`k${i}`, 5]],
          }));
        await a.saveCursors(new Map(names.map((n, i) => [n, snap(i)])));
        assert.deepEqual(await b.loadCursors('many-123'), snap(123));
        assert.equal(await b.delete('many-123'), true);
        // A commit naming a subscription another instance deleted: the others are saved.
        await a.saveCursors(new Map(names.map((n, i) => [n, snap(i + 1)])));
        assert.deepEqual(await b.loadCursors('many-124'), snap(125));
        assert.deepEqual(await b.loadCursors('many-123'), []);
        // A commit of some partitions keeps the stored others (merged in SQL).
        await a.saveCursors(new Map([['many-000', [{ partition: 2, next: 7, pending: [], anchors: [] }]]]));
        const merged = await b.loadCursors('many-000');
        assert.deepEqual(
          merged.map((c) => [c.partition, c.next]),
          [
            [0, 1001],
            [1, 1001],
            [2, 7],
            [3, 1001],
          ],
        );
        assert.deepEqual(merged[0], snap(1)[0]);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('the change feed reports a change committed while it was disconnected (re-read after re-LISTEN)', async () => {
      const store = await PostgresSubscriptionStore.open(server.url);
      const feed = await PostgresChangeFeed.open(server.url, { retryMs: 500 });
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      try {
        const heard: StateChange[] = [];
        const reading = (async () => {
          for await (const c of feed.changes()) heard.push(c);
        })();
        const at = new Date().toISOString();
        const rec = { name: 'feed-live', version: 1, spec: {}, createdAt: at, updatedAt: at };
        await store.put(rec, 0);
        const wait = async (cond: () => boolean, what: string) => {
          const t0 = Date.now();
          while (!cond()) {
            if (Date.now() - t0 > 5000) throw new Error(`${what}: ${JSON.stringify(heard)}`);
            await new Promise((r) => setTimeout(r, 20));
          }
        };
        await wait(() => heard.some((c) => c.name === 'feed-live'), 'notified');
        await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cds-feed'",
        );
        await wait(() => !feed.connected, 'disconnected');
        // Committed while nobody listens (the feed waits 500 ms before reconnecting).
        await store.put({ ...rec, name: 'feed-missed' }, 0);
        await store.put({ ...rec, version: 2 }, 1);
        await wait(() => feed.connected, 'reconnected');
        await wait(
          () =>
            heard.some((c) => c.kind === 'subscription' && c.name === 'feed-missed') &&
            heard.filter((c) => c.name === 'feed-live').length >= 2 &&
            heard.some((c) => c.kind === 'principal' && c.name === '*'),
          're-read reported the missed changes',
        );
        await feed.close();
        await reading;
      } finally {
        await feed.close();
        await admin.end();
        await store.close();
      }
    });
  });
}
