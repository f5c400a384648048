/**
 * The PostgreSQL RetentionPolicyStore passes the port's contract unchanged, against a real server;
 * two stores on one database conflict instead of overwriting each other; every change notifies the
 * change feed (kind retention), so that every instance reloads the policies (ADR 0017).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  PostgresChangeFeed,
  PostgresRetentionStore,
  type StateChange,
} from '../../src/adapters/postgres/index.ts';
import { isCdsError } from '../../src/errors/index.ts';
import { retentionStoreContract } from '../../src/state/retention-contract.ts';
import type { RetentionPolicyRecord } from '../../src/state/retention-port.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const db = await startPostgres();

const rec = (name: string, version: number): RetentionPolicyRecord => ({
  name,
  version,
  pattern: `decisions.${name}.>`,
  maxCount: version,
  onUnacknowledged: 'drop',
  createdAt: new Date().toISOString(),
  updatedAt: new Date().toISOString(),
  updatedBy: 'p-test',
});

if ('skipped' in db) {
  it('RetentionPolicyStore: postgres', { skip: db.skipped }, () => {});
} else {
  const server = db as TestPostgres;
  retentionStoreContract('postgres', async () => ({
    store: await PostgresRetentionStore.open(server.url),
    reopen: () => PostgresRetentionStore.open(server.url),
    cleanup: async () => undefined,
  }));

  describe('RetentionPolicyStore on PostgreSQL: two stores, and the change feed', () => {
    let a: PostgresRetentionStore;
    let b: PostgresRetentionStore;
    before(async () => {
      a = await PostgresRetentionStore.open(server.url);
      b = await PostgresRetentionStore.open(server.url);
    });
    after(async () => {
      await a?.close();
      await b?.close();
      await server.stop();
    });

    it('concurrent writes of the same version from two stores: exactly one wins', async () => {
      for (let round = 0; round < 5; round++) {
        const name = `race-${round}`;
        const created = await Promise.allSettled([a.put(rec(name, 1)), b.put(rec(name, 1))]);
        assert.equal(created.filter((o) => o.status === 'fulfilled').length, 1, JSON.stringify(created));
        const lost = created.find((o) => o.status === 'rejected') as PromiseRejectedResult;
        assert.ok(isCdsError(lost.reason) && lost.reason.code === 'ALREADY_EXISTS', String(lost.reason));
        const updated = await Promise.allSettled([a.put(rec(name, 2)), b.put(rec(name, 2))]);
        assert.equal(updated.filter((o) => o.status === 'fulfilled').length, 1, JSON.stringify(updated));
        assert.equal((await b.get(name))?.version, 2);
      }
    });

    it('every change notifies the feed (kind retention, with the policy name)', async () => {
      const feed = await PostgresChangeFeed.open(server.url, { retryMs: 300 });
      const heard: StateChange[] = [];
      const reading = (async () => {
        for await (const c of feed.changes()) heard.push(c);
      })();
      const wait = async (cond: () => boolean, what: string) => {
        const t0 = Date.now();
        while (!cond()) {
          if (Date.now() - t0 > 5000) throw new Error(`${what}: ${JSON.stringify(heard)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      try {
        await a.put(rec('feed', 1));
        await a.put(rec('feed', 2));
        await b.delete('feed');
        await wait(
          () => heard.filter((c) => c.kind === 'retention' && c.name === 'feed').length === 3,
          'three notifications',
        );
      } finally {
        await feed.close();
        await reading;
      }
    });
  });
}
