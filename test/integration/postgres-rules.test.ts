/**
 * The PostgreSQL RuleStore passes the port's contract unchanged, against a real server; two stores on
 * one database create versions and move the pointer atomically; moving the pointer notifies the change
 * feed, and a feed that reconnects reports that the rule set may have changed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import {
  PostgresChangeFeed,
  PostgresRuleStore,
  type StateChange,
} from '../../src/adapters/postgres/index.ts';
import { isCdsError } from '../../src/errors/index.ts';
import { ruleStoreContract } from '../../src/state/rules-contract.ts';
import type { RuleSetRecord } from '../../src/state/rules-port.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const db = await startPostgres();
const db2 = 'skipped' in db ? db : await startPostgres();

const rec = (version: number): RuleSetRecord => ({
  version,
  ruleSet: { rules: [], defaultRoute: 'decisions.{portfolioId}' },
  createdAt: new Date().toISOString(),
  createdBy: 'p-test',
});
const pointer = (version: number) => ({
  version,
  activatedAt: new Date().toISOString(),
  activatedBy: 'p-test',
});

if ('skipped' in db || 'skipped' in db2) {
  it('RuleStore: postgres', { skip: 'skipped' in db ? db.skipped : 'no server' }, () => {});
} else {
  const server = db as TestPostgres;
  ruleStoreContract('postgres', async () => ({
    store: await PostgresRuleStore.open(server.url),
    reopen: () => PostgresRuleStore.open(server.url),
    cleanup: () => server.stop(),
  }));

  const shared = db2 as TestPostgres;
  describe('RuleStore on PostgreSQL: two stores on one database, and the change feed', () => {
    let a: PostgresRuleStore;
    let b: PostgresRuleStore;
    before(async () => {
      a = await PostgresRuleStore.open(shared.url);
      b = await PostgresRuleStore.open(shared.url);
    });
    after(async () => {
      await a?.close();
      await b?.close();
      await shared.stop();
    });

    it('concurrent creates of the same version from two stores: exactly one wins, the other is VERSION_CONFLICT', async () => {
      for (let round = 0; round < 5; round++) {
        const n = (await a.latest()) + 1;
        const outcomes = await Promise.allSettled([a.create(rec(n)), b.create(rec(n), pointer(n))]);
        const won = outcomes.filter((o) => o.status === 'fulfilled');
        assert.equal(won.length, 1, JSON.stringify(outcomes));
        const lost = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
        assert.ok(isCdsError(lost.reason) && lost.reason.code === 'VERSION_CONFLICT', String(lost.reason));
        assert.equal(await b.latest(), n);
      }
      // Two activations expecting the same active version: one wins.
      // Both targets differ from the current version: activating the current one again would leave
      // the pointer where the other store expects it, and both would rightly succeed.
      const cur = (await a.active())?.version ?? 0;
      const [t1, t2] = [1, 2, 3].filter((v) => v !== cur) as [number, number];
      const outcomes = await Promise.allSettled([a.activate(pointer(t1), cur), b.activate(pointer(t2), cur)]);
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1, JSON.stringify(outcomes));
    });

    it('moving the pointer notifies the feed (kind rules); after a reconnect the feed reports rules *', async () => {
      const feed = await PostgresChangeFeed.open(shared.url, { retryMs: 300 });
      const admin = new pg.Client({ connectionString: shared.url });
      await admin.connect();
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
        const n = (await a.latest()) + 1;
        await a.create(rec(n)); // stored, not activated: no routing change, no notification
        await a.activate(pointer(n));
        await wait(() => heard.some((c) => c.kind === 'rules' && c.name === String(n)), 'notified');
        assert.equal(heard.filter((c) => c.kind === 'rules').length, 1, JSON.stringify(heard));
        await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cds-feed'",
        );
        await wait(() => !feed.connected, 'disconnected');
        await b.activate(pointer(0)); // while nobody listens
        await wait(() => feed.connected, 'reconnected');
        await wait(() => heard.some((c) => c.kind === 'rules' && c.name === '*'), 'reported after reconnect');
      } finally {
        await feed.close();
        await reading;
        await admin.end();
      }
    });
  });
}
