/**
 * Issue 8's check, in two processes on a real Pulsar broker and PostgreSQL (ADR 0015): two `cds serve`
 * under a steady load, one killed with SIGKILL. Every subscriber ends with every decision, first
 * receipts in per-key order, and no subscription was dispatched by two instances at once (the instances
 * serving each subscription, in time order, follow its lease: first owner, then the survivor).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import {
  checkReceipts,
  CLUSTER_ADMIN_KEY,
  consumerGroups,
  leaseOwners,
  missing,
  type Receipt,
} from '../helpers/cluster.ts';
import { makeDecision } from '../helpers/decisions.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { isSkipped, startPulsar } from '../helpers/pulsar.ts';
import { startServer, type ServerHandle } from '../helpers/server.ts';

const LEASE_MS = 3000;

const pulsar = await startPulsar();
const db = await startPostgres();

async function post(s: ServerHandle, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(`${s.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CLUSTER_ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

if (isSkipped(pulsar) || 'skipped' in db) {
  it(
    'two processes, one killed with SIGKILL',
    { skip: isSkipped(pulsar) ? pulsar.skipped : (db as { skipped: string }).skipped },
    () => {},
  );
} else {
  const pg0 = db as TestPostgres;
  describe(
    'cluster mode on Pulsar and PostgreSQL: one of two processes killed with SIGKILL',
    { timeout: 300_000 },
    () => {
      const servers: ServerHandle[] = [];
      after(async () => {
        for (const s of servers) {
          await s.stop().catch(() => undefined);
          s.cleanup();
        }
        await pg0.stop();
      });

      it('every subscriber ends with every decision, in per-key order; never two dispatchers at once', async (t) => {
        const env = {
          CDS_LOG: 'pulsar',
          CDS_PULSAR_URL: pulsar.webServiceUrl,
          CDS_PULSAR_TENANT: `cds-kill-${randomUUID().slice(0, 8)}`,
          CDS_STATE: 'postgres',
          CDS_POSTGRES_URL: pg0.url,
          CDS_LEASE_MS: String(LEASE_MS),
          CDS_LEASE_RENEW_MS: '500',
          CDS_LOG_LEVEL: 'warn',
        };
        const a = await startServer({ env, adminKey: CLUSTER_ADMIN_KEY, timeoutMs: 120_000 });
        servers.push(a);
        const b = await startServer({ env, adminKey: CLUSTER_ADMIN_KEY, timeoutMs: 120_000 });
        servers.push(b);
        const names = ['k-one', 'k-two', 'k-three', 'k-four'];
        for (const name of names) {
          const r = await post(a, '/v1/subscriptions', { name, topics: ['decisions.>'] });
          assert.equal(r.status, 201, JSON.stringify(r.body));
        }
        const owners = () => leaseOwners(pg0.url);
        {
          const t0 = Date.now();
          while ([...(await owners()).values()].filter((u) => u === a.url).length !== 2) {
            assert.ok(Date.now() - t0 < 30_000, 'two subscriptions on each instance');
            await sleep(100);
          }
          const firstOwner = await owners();
          const { receipts, subs, events } = consumerGroups(names, [a.url, b.url]);
          const published: string[] = [];
          let publishing = true;
          let seq = 0;
          const load = (async () => {
            while (publishing) {
              const batch = Array.from({ length: 5 }, () =>
                makeDecision(0, {
                  decisionId: `kill-${seq}`,
                  portfolioId: `pf-${seq++ % 8}`,
                  expiresAt: undefined,
                }),
              );
              const r = await post(b, '/v1/decisions', batch).catch(() => ({ status: 0, body: null }));
              if (r.status === 200) published.push(...batch.map((d) => d.decisionId));
              await sleep(20);
            }
          })();
          await sleep(2000);
          await a.kill(); // SIGKILL: no release, no last commit
          const killedAt = Date.now();
          let moved = false;
          while (!moved) {
            const o = await owners();
            moved = names.every((n) => o.get(n) === b.url);
            assert.ok(Date.now() - killedAt < LEASE_MS * 5, 'B takes every subscription');
            if (!moved) await sleep(100);
          }
          t.diagnostic(`B held every subscription ${Date.now() - killedAt} ms after the SIGKILL`);
          await sleep(2000);
          publishing = false;
          await load;
          const t1 = Date.now();
          for (;;) {
            const left = missing(receipts, published);
            if (left.every((m) => m === 0)) break;
            assert.ok(
              Date.now() - t1 < 60_000,
              `missing ${left.join(', ')} of ${published.length}\n${events.join('\n')}`,
            );
            await sleep(100);
          }
          t.diagnostic(
            `${published.length} published; all received ${Date.now() - t1} ms after the load stopped`,
          );
          for (const s of subs) s.close();
          // Pulsar's retention is pinned at the slowest committed cursor: once everything is acknowledged
          // and committed, the durable `cds-cursors` subscription of each partition has (almost) no backlog.
          const backlog = async () =>
            Promise.all(
              [0, 1, 2, 3].map(async (p) => {
                const r = await fetch(
                  `${pulsar.webServiceUrl}/admin/v2/persistent/${env.CDS_PULSAR_TENANT}/cds/decisions-partition-${p}/stats`,
                );
                const stats = (await r.json()) as { subscriptions: Record<string, { msgBacklog: number }> };
                return stats.subscriptions['cds-cursors']?.msgBacklog ?? -1;
              }),
            );
          const t2 = Date.now();
          let pinned = await backlog();
          while (!pinned.every((n) => n >= 0 && n <= 1) && Date.now() - t2 < 15_000) {
            await sleep(500);
            pinned = await backlog();
          }
          t.diagnostic(`cds-cursors backlog per partition: ${pinned.join(', ')}`);
          assert.ok(
            pinned.every((n) => n >= 0 && n <= 1),
            `cds-cursors backlog ${pinned.join(', ')}`,
          );
          assert.ok(published.length > 100, `${published.length} published`);
          for (const n of names)
            checkReceipts(n, receipts.get(n) as Receipt[], [firstOwner.get(n) as string, b.url]);
        }
      });
    },
  );
}
