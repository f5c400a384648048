/**
 * Retention in cluster mode on a real Pulsar broker and PostgreSQL (ADR 0017, ADR 0015): two
 * `cds serve` processes, both applying a `wait` policy that lets everything go (maxAgeMs 0) every
 * 300 ms to the shared Pulsar log. A subscription dispatched by one of them and left lagging (nothing
 * acknowledged) holds the other's runs at its committed floor on every partition, and its consumer
 * afterwards receives every decision. (Before the fix the instance not dispatching it trimmed the
 * shared log to its tail.)
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { PostgresSubscriptionStore } from '../../src/adapters/postgres/index.ts';
import { CLUSTER_ADMIN_KEY, consumer, leaseOwners, type Receipt, within } from '../helpers/cluster.ts';
import { makeDecision, NEVER_EXPIRES } from '../helpers/decisions.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { isSkipped, startPulsar } from '../helpers/pulsar.ts';
import { startServer, type ServerHandle } from '../helpers/server.ts';

const pulsar = await startPulsar();
const db = await startPostgres();

async function call(
  s: ServerHandle,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const r = await fetch(`${s.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${CLUSTER_ADMIN_KEY}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

/** A partition's run as `lastRun` reports it. */
interface Run {
  partition: number;
  firstAfter: number;
  policyCut: number;
  waitingFor: { subscription: string; offset: number }[];
}

if (isSkipped(pulsar) || 'skipped' in db) {
  it(
    'retention with two processes on Pulsar',
    { skip: isSkipped(pulsar) ? pulsar.skipped : (db as { skipped: string }).skipped },
    () => {},
  );
} else {
  const pg0 = db as TestPostgres;
  describe('retention with two processes on one Pulsar log and PostgreSQL', { timeout: 300_000 }, () => {
    const servers: ServerHandle[] = [];
    let store: PostgresSubscriptionStore | undefined;
    after(async () => {
      await store?.close();
      for (const s of servers) {
        await s.stop().catch(() => undefined);
        s.cleanup();
      }
      await pg0.stop();
    });

    it('wait: the instance not dispatching a lagging subscription never trims past its committed floor', async (t) => {
      const env = {
        CDS_LOG: 'pulsar',
        CDS_PULSAR_URL: pulsar.webServiceUrl,
        CDS_PULSAR_TENANT: `cds-ret-${randomUUID().slice(0, 8)}`,
        CDS_STATE: 'postgres',
        CDS_POSTGRES_URL: pg0.url,
        CDS_LEASE_MS: '3000',
        CDS_LEASE_RENEW_MS: '500',
        CDS_RETENTION_INTERVAL_MS: '300',
        CDS_LOG_LEVEL: 'warn',
      };
      const a = await startServer({ env, adminKey: CLUSTER_ADMIN_KEY, timeoutMs: 120_000 });
      servers.push(a);
      const b = await startServer({ env, adminKey: CLUSTER_ADMIN_KEY, timeoutMs: 120_000 });
      servers.push(b);
      const name = 'lagging';
      const created = await call(a, 'POST', '/v1/subscriptions', {
        name,
        topics: ['decisions.>'],
        start: 'earliest',
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      let ownerUrl = '';
      await within(30_000, 'the subscription leased', async () => {
        ownerUrl = (await leaseOwners(pg0.url)).get(name) ?? '';
        return ownerUrl !== '';
      });
      const owner = ownerUrl === a.url ? a : b;
      const other = owner === a ? b : a;

      const ids: string[] = [];
      for (let j = 0; j < 200; j += 50) {
        const batch = Array.from({ length: 50 }, (_, k) =>
          makeDecision(j + k, {
            decisionId: `ret-${j + k}`,
            portfolioId: `pf-${(j + k) % 8}`,
            expiresAt: NEVER_EXPIRES,
          }),
        );
        const r = await call(other, 'POST', '/v1/decisions', batch);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        ids.push(...batch.map((d) => d.decisionId));
      }
      store = await PostgresSubscriptionStore.open(pg0.url);
      const floors = new Map(
        (await store.loadCursors(name)).map((c) => [c.partition, c.pending[0]?.[0] ?? c.next]),
      );
      const put = await call(other, 'PUT', '/v1/retention-policies/all', {
        pattern: 'decisions.>',
        maxAgeMs: 0,
        onUnacknowledged: 'wait',
      });
      assert.equal(put.status, 201, JSON.stringify(put.body));

      // A run of the other instance that saw the policy and every record: policies alone cut at the tail.
      let runs: Run[] = [];
      await within(30_000, 'a run of the other instance under the policy', async () => {
        const r = await call(other, 'GET', '/v1/retention-policies');
        runs = (r.body?.lastRun?.partitions ?? []) as Run[];
        return runs.length > 0 && runs.reduce((n, p) => n + p.policyCut, 0) >= ids.length;
      });
      t.diagnostic(`other's run: ${JSON.stringify(runs)}`);
      for (const p of runs) {
        const floor = floors.get(p.partition) ?? 0;
        assert.ok(
          p.firstAfter <= floor,
          `partition ${p.partition} trimmed to ${p.firstAfter}, past the committed floor ${floor}`,
        );
        if (p.policyCut > floor)
          assert.ok(
            p.waitingFor.some((w) => w.subscription === name),
            JSON.stringify(p),
          );
      }

      // Its consumer (sent to the owner) still receives every decision.
      const receipts: Receipt[] = [];
      const s = consumer(name, [other.url, owner.url], receipts, []);
      try {
        await within(
          30_000,
          'every decision received',
          () => new Set(receipts.map((r) => r.decisionId)).size === ids.length,
        );
      } finally {
        s.close();
      }
    });
  });
}
