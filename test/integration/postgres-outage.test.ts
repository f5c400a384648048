/**
 * PostgreSQL goes away under a steady publish load (a private server stopped with pg_ctl stop -m fast
 * and started again on the same port and data directory): what does not need it keeps answering,
 * what needs it answers 503 with Retry-After, the service serves again without a restart of its own,
 * its change feed listens again, and every acknowledged decision is there afterwards.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { createDecisionGenerator, testSeed } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/postgres.ts';

const db = await startPrivatePostgres();

async function within(ms: number, what: string, cond: () => Promise<boolean>): Promise<void> {
  const t0 = Date.now();
  while (!(await cond().catch(() => false))) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

if ('skipped' in db) {
  it('PostgreSQL outage under load', { skip: db.skipped }, () => {});
} else {
  const server = db as PrivatePostgres;
  describe('PostgreSQL outage under load', () => {
    let t: TestApp | undefined;
    after(async () => {
      await t?.close();
      await server.stop();
    });

    it('publishes fail retriably during the outage, nothing acknowledged is lost, the service recovers by itself', async () => {
      t = await startTestApp({ state: { engine: 'postgres' }, postgres: { url: server.url } });
      const app = t;
      const gen = createDecisionGenerator({ seed: testSeed('pg-outage'), idPrefix: 'out' });
      const acked: string[] = [];
      const failures: { status: number; code: unknown; retryAfter: unknown }[] = [];
      let stop = false;
      const load = (async () => {
        while (!stop) {
          const batch = gen.take(20);
          const r = await app.request('POST', '/v1/decisions', { body: batch });
          if (r.status === 200) acked.push(...batch.map((d) => d.decisionId));
          else
            failures.push({
              status: r.status,
              code: r.body?.error?.code,
              retryAfter: r.headers['retry-after'],
            });
          await new Promise((res) => setTimeout(res, 10));
        }
      })();
      await within(5000, 'load started', async () => acked.length >= 100);
      await server.down();
      const ackedAtDown = acked.length;
      // During the outage: health (no PostgreSQL) answers; a subscription create (PostgreSQL) is 503.
      const healthDuringOutage = (await app.request('GET', '/healthz')).status;
      const create = await app.request('POST', '/v1/subscriptions', {
        body: { name: 'during-outage', topics: ['decisions.>'] },
      });
      assert.equal(create.status, 503, JSON.stringify(create.body));
      assert.equal(create.body.error?.code, 'STORAGE_UNAVAILABLE');
      assert.ok(Number(create.headers['retry-after']) >= 1);
      await new Promise((r) => setTimeout(r, 1500));
      await server.up();
      // Serving again without a restart: publishes are acknowledged again.
      const ackedAtUp = acked.length;
      await within(10_000, 'publishes acknowledged again', async () => acked.length >= ackedAtUp + 100);
      stop = true;
      await load;
      assert.equal(healthDuringOutage, 200);
      for (const f of failures) {
        assert.equal(f.status, 503, JSON.stringify(f));
        assert.equal(f.code, 'STORAGE_UNAVAILABLE');
        assert.ok(Number(f.retryAfter) >= 1, JSON.stringify(f));
      }
      const created = await app.request('POST', '/v1/subscriptions', {
        body: { name: 'after-outage', topics: ['decisions.>'] },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      // The change feed listens again.
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      try {
        await within(5000, 'feed listening again', async () => {
          const { rows } = await c.query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'cds-feed'",
          );
          return rows[0].n === 1;
        });
      } finally {
        await c.end();
      }
      // Every acknowledged decision is there (the index writer retried what the outage interrupted).
      const missing = async () => {
        const out: string[] = [];
        for (const id of acked)
          if ((await app.request('GET', `/v1/decisions/${id}`)).status !== 200) out.push(id);
        return out;
      };
      await within(15_000, 'every acknowledged decision indexed', async () => (await missing()).length === 0);
      assert.ok(acked.length > ackedAtDown, `acked ${acked.length}, at down ${ackedAtDown}`);
      t.app.ctx.logger.info({ acked: acked.length, failures: failures.length }, 'outage figures');
      console.log(`outage: ${acked.length} acknowledged, ${failures.length} retriable failures`);
    });
  });
}
