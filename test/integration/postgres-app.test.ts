/** The service with state.engine=postgres (CDS_POSTGRES_URL) against a real server: publish, duplicates, query, restart. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createDecisionGenerator, testSeed } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const db = await startPostgres();

if ('skipped' in db) {
  it('service on PostgreSQL state', { skip: db.skipped }, () => {});
} else {
  const server = db as TestPostgres;
  describe('service on PostgreSQL state', () => {
    let t: TestApp | undefined;
    after(async () => {
      await t?.close();
      await server.stop();
    });

    it('publishes, detects duplicates, queries and keeps everything across a restart', async () => {
      const overrides = { state: { engine: 'postgres' }, postgres: { url: server.url } };
      t = await startTestApp(overrides);
      const decisions = createDecisionGenerator({ seed: testSeed('pg-app'), idPrefix: 'pg' }).take(500);
      const r = await t.request('POST', '/v1/decisions', { body: decisions });
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
      assert.equal((await t.request('POST', '/v1/decisions', { body: decisions[7] })).body.duplicate, true);
      const q = await t.request('GET', '/v1/decisions?assetClass=fx&limit=1000');
      assert.equal(q.body.items.length, decisions.filter((d) => d.instrument.assetClass === 'fx').length);
      const dir = t.dataDir;
      await t.close({ keep: true });
      t = await startTestApp(overrides, dir);
      assert.equal((await t.request('GET', `/v1/decisions/${decisions[42]?.decisionId}`)).status, 200);
      assert.equal((await t.request('POST', '/v1/decisions', { body: decisions[3] })).body.duplicate, true);
      const status = await t.request('GET', '/v1/status');
      assert.equal(status.body.modes.state, 'postgres');
      assert.equal(status.body.totals.storedRevisions, 500);
    });

    it('refuses to start without a connection string, or with a bad one, naming the problem', async () => {
      await assert.rejects(startTestApp({ state: { engine: 'postgres' } }), /postgres\.url/);
      await assert.rejects(
        startTestApp({
          state: { engine: 'postgres' },
          postgres: { url: 'postgres://nobody@127.0.0.1:1/none' },
        }),
        (e: Error) =>
          /STORAGE_UNAVAILABLE|connect|ECONNREFUSED/i.test(`${(e as { code?: string }).code} ${e.message}`),
      );
    });
  });
}
