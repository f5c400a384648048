/**
 * Rule sets in cluster mode: two service instances on one PostgreSQL database (two data directories,
 * one postgres.url). A version activated on one routes the next decision published on the other
 * within one second (the change feed's `rules` notification makes it reload the active set), and a
 * rollback likewise; the recorded version shows in explain.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { within } from '../helpers/wait.ts';

const db = await startPostgres();

if ('skipped' in db) {
  it('rule sets across two instances on one PostgreSQL database', { skip: db.skipped }, () => {});
} else {
  const server = db as TestPostgres;
  describe('rule sets across two instances on one PostgreSQL database', () => {
    let a: TestApp;
    let b: TestApp;
    let n = 0;
    const tag = `${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
    /** Publishes a fresh decision of portfolio pf-fast on `t`; resolves the publish answer. */
    const publish = async (t: TestApp) => {
      const d = makeDecision(++n, { decisionId: `cr-${tag}-${n}`, portfolioId: 'pf-fast' });
      const r = await t.request('POST', '/v1/decisions', { body: d });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body as { decisionId: string; topics: string[] };
    };
    before(async () => {
      const overrides = { state: { engine: 'postgres' }, postgres: { url: server.url } };
      a = await startTestApp(overrides);
      b = await startTestApp(overrides);
    });
    after(async () => {
      await a?.close();
      await b?.close();
      await server.stop();
    });

    it('a version activated on one routes the next publish on the other within one second, and a rollback likewise', async () => {
      const before = await publish(b);
      const builtIn = before.topics; // the configured default route (built-in set, version 0)
      assert.ok(!builtIn.includes('fast.pf-fast'));
      const created = await a.request('POST', '/v1/routes', {
        body: {
          rules: [
            { id: 'fast', condition: 'decision.portfolioId == "pf-fast"', topics: ['fast.{portfolioId}'] },
          ],
          comment: 'cluster',
        },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const v = created.body.version as number;
      let last: { decisionId: string; topics: string[] } | undefined;
      const tookMs = await within(1000, 'the new version routes on b', async () => {
        last = await publish(b);
        return last.topics.includes('fast.pf-fast');
      });
      const explained = await b.request(
        'GET',
        `/v1/decisions/${(last as { decisionId: string }).decisionId}/route`,
      );
      assert.equal(explained.status, 200, JSON.stringify(explained.body));
      assert.equal(explained.body.ruleSet.version, v);
      assert.equal(explained.body.ruleSet.activeNow, true);
      assert.deepEqual(
        explained.body.matchedRules.map((r: { id: string }) => r.id),
        ['fast'],
      );
      assert.equal((await b.request('GET', '/v1/routes')).body.version, v);

      // Rollback to the built-in set, on a; b routes with it within one second.
      const rolled = await a.request('POST', '/v1/routes/versions/0:activate');
      assert.equal(rolled.status, 200, JSON.stringify(rolled.body));
      const backMs = await within(1000, 'the rollback routes on b', async () => {
        last = await publish(b);
        return !last.topics.includes('fast.pf-fast');
      });
      assert.deepEqual((last as { topics: string[] }).topics, builtIn);
      const back = await b.request(
        'GET',
        `/v1/decisions/${(last as { decisionId: string }).decisionId}/route`,
      );
      assert.equal(back.body.ruleSet.version, 0);

      // And the other way: b activates the version again; a routes with it.
      const again = await b.request('POST', `/v1/routes/versions/${v}:activate`);
      assert.equal(again.status, 200, JSON.stringify(again.body));
      await within(1000, 're-activation routes on a', async () =>
        (await publish(a)).topics.includes('fast.pf-fast'),
      );
      console.log(`rules across instances: activation seen in ${tookMs} ms, rollback in ${backMs} ms`);
    });
  });
}
