/**
 * Two service instances on one PostgreSQL database (two data directories, one postgres.url): what one
 * changes, the other applies within a second through the change feed (LISTEN/NOTIFY), also after its
 * listening connection was killed. A subscription runs on the instance holding its lease (ADR 0015).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { DeliveryEngine } from '../../src/delivery/engine.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const db = await startPostgres();

/** Polls `cond` every 20 ms; resolves the elapsed ms, or throws after `ms`. */
async function within(ms: number, what: string, cond: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

if ('skipped' in db) {
  it('two instances on one PostgreSQL database', { skip: db.skipped }, () => {});
} else {
  const server = db as TestPostgres;
  describe('two instances on one PostgreSQL database', () => {
    let a: TestApp;
    let b: TestApp;
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

    it('a key revoked on one stops working on the other within one second', async () => {
      const created = await a.request('POST', '/v1/keys', { body: { name: 'k1', scopes: ['subscribe:>'] } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const key = created.body.key as string;
      const id = (created.body.principal?.id ?? created.body.id) as string;
      assert.equal((await b.request('GET', '/v1/subscriptions', { key })).status, 200); // now cached on b
      assert.equal((await a.request('DELETE', `/v1/keys/${id}`)).status, 200);
      await within(1000, 'revocation seen on b', async () => {
        return (await b.request('GET', '/v1/subscriptions', { key })).status === 401;
      });
    });

    it('a subscription created, paused and deleted on one is applied by the one that dispatches it within one second', async () => {
      const name = 'cluster-sub';
      const r = await a.request('POST', '/v1/subscriptions', { body: { name, topics: ['decisions.>'] } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      // The engines (private to DeliveryIntrospect; read here only to see what each instance runs).
      const running = (t: TestApp) =>
        (t.app.ctx.deliveries as unknown as { engine: DeliveryEngine }).engine.get(name)?.spec;
      // One instance runs it (the creator takes its free lease, ADR 0015); GET shows it on both.
      await within(1000, 'created and known on b', async () => {
        const g = await b.request('GET', `/v1/subscriptions/${name}`);
        return g.status === 200 && g.body.status?.owner?.id !== undefined;
      });
      const owner = running(a) !== undefined ? a : b;
      const other = owner === a ? b : a;
      assert.equal(running(other), undefined, 'never run by two instances');
      assert.equal((await other.request('POST', `/v1/subscriptions/${name}/pause`)).status, 200);
      await within(1000, 'paused on its owner', async () => running(owner)?.state === 'paused');
      assert.equal((await other.request('DELETE', `/v1/subscriptions/${name}`)).status, 204);
      await within(1000, 'deleted on its owner', async () => {
        const g = await owner.request('GET', `/v1/subscriptions/${name}`);
        return g.status === 404 && running(owner) === undefined;
      });
    });

    it('after its listening connection is killed, the feed reconnects and misses nothing', async () => {
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      try {
        // Kill every feed connection, then change at once: the re-read after the re-LISTEN reports it.
        await c.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cds-feed'",
        );
        const name = 'after-reconnect';
        const r = await a.request('POST', '/v1/subscriptions', { body: { name, topics: ['decisions.>'] } });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        await within(3000, 'created on b after the feed reconnected', async () => {
          const g = await b.request('GET', `/v1/subscriptions/${name}`);
          return g.status === 200 && g.body.status?.owner?.id !== undefined;
        });
        await within(3000, 'both feeds listening again', async () => {
          const { rows } = await c.query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'cds-feed'",
          );
          return rows[0].n === 2;
        });
      } finally {
        await c.end();
      }
    });
  });
}
