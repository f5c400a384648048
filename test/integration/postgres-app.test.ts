/** The service with state.engine=postgres (CDS_POSTGRES_URL) against a real server: publish, duplicates, query, restart. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
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
      await assert.rejects(
        startTestApp({ state: { engine: 'postgres' }, postgres: { url: 'mysql://u@h/db' } }),
        (e: Error) => (e as { code?: string }).code === 'CONFIG_INVALID' && /scheme/.test(e.message),
      );
    });

    it('refuses a wrong password at start, naming it, without the password', async (tc) => {
      if (server.passwordUrl === undefined) return tc.skip('external server: authentication not ours');
      const u = new URL(server.passwordUrl);
      u.password = 'not-the-password';
      await assert.rejects(
        startTestApp({ state: { engine: 'postgres' }, postgres: { url: u.toString() } }),
        (e: Error) =>
          (e as { code?: string }).code === 'CONFIG_INVALID' &&
          /credentials/.test(e.message) &&
          !e.message.includes('not-the-password'),
      );
    });

    it('refuses a database of a newer schema version at start, and migrates nothing', async () => {
      const fresh = await startPostgres();
      if ('skipped' in fresh) throw new Error(fresh.skipped);
      const c = new pg.Client({ connectionString: fresh.url });
      await c.connect();
      try {
        await c.query(`CREATE TABLE cds_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
          checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
        await c.query(
          "INSERT INTO cds_schema_migrations (version, name, checksum) VALUES (99, '0099_future.sql', 'x')",
        );
        await assert.rejects(
          startTestApp({ state: { engine: 'postgres' }, postgres: { url: fresh.url } }),
          (e: Error & { details?: { reason?: string } }) =>
            (e as { code?: string }).code === 'CONFIG_INVALID' &&
            e.details?.reason === 'schema_newer' &&
            /99/.test(e.message),
        );
        const { rows } = await c.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'cds_schema_migrations'",
        );
        assert.equal(rows[0]?.n, 0, 'no table was created');
      } finally {
        await c.end();
        await fresh.stop();
      }
    });

    it('keeps subscriptions and their cursors in PostgreSQL across a restart', async () => {
      const overrides = { state: { engine: 'postgres' }, postgres: { url: server.url } };
      await t?.close();
      t = await startTestApp(overrides);
      const r = await t.request('POST', '/v1/subscriptions', {
        body: { name: 'kept', topics: ['decisions.>'] },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const dir = t.dataDir;
      await t.close({ keep: true });
      t = await startTestApp(overrides, dir);
      const g = await t.request('GET', '/v1/subscriptions/kept');
      assert.equal(g.status, 200);
      assert.ok(Object.keys(g.body.status ?? {}).length > 0, 'running after the restart');
    });
  });
}
