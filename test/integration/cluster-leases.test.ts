/**
 * Cluster leases on a real PostgreSQL server (ADR 0015): the LeaseStore contract, two stores acting
 * as two instances on one database, and stale cursor commits and dead-letter writes racing takeovers.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, it } from 'node:test';
import { PostgresLeaseStore, PostgresSubscriptionStore } from '../../src/adapters/postgres/index.ts';
import { leaseStoreContract } from '../../src/state/leases-contract.ts';
import { letter } from '../../src/state/subscriptions-contract.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const started = await startPostgres();

if ('skipped' in started) {
  it('cluster leases on PostgreSQL', { skip: started.skipped }, () => {});
} else {
  const server = started as TestPostgres;
  after(() => server.stop());
  leaseStoreContract('postgres', async () => ({
    a: await PostgresLeaseStore.open(server.url),
    b: await PostgresLeaseStore.open(server.url),
    subscriptions: await PostgresSubscriptionStore.open(server.url),
    cleanup: async () => {},
  }));

  it('a stale owner committing while another takes the lease never overwrites the new owner', async () => {
    const subs = await PostgresSubscriptionStore.open(server.url);
    const a = await PostgresLeaseStore.open(server.url);
    const b = await PostgresLeaseStore.open(server.url);
    try {
      for (let i = 0; i < 30; i++) {
        const name = `race-${i}`;
        const at = new Date().toISOString();
        await subs.put({ name, version: 1, spec: {}, createdAt: at, updatedAt: at }, 0, []);
        const old = (await a.acquire('A', [name], 40)).get(name) as number;
        await sleep(50); // A's lease expires; A does not know yet and commits as B takes over
        const snap = (next: number) => new Map([[name, [{ partition: 0, next, pending: [], anchors: [] }]]]);
        const [refusedA, taken] = await Promise.all([
          subs.saveCursors(snap(1), new Map([[name, old]])),
          (async () => {
            const t = (await b.acquire('B', [name], 60_000)).get(name) as number;
            const loaded = await subs.loadCursors(name); // what B resumes from
            await subs.saveCursors(snap((loaded[0]?.next ?? 0) + 100), new Map([[name, t]]));
            return t;
          })(),
        ]);
        assert.ok(taken > old);
        const final = (await subs.loadCursors(name))[0]?.next;
        // Either A's commit landed before B took over (B resumed from it: 101) or it was refused (100).
        assert.ok(
          (refusedA.length === 0 && final === 101) || (refusedA.length === 1 && final === 100),
          `round ${i}: refused ${refusedA.join(',')}, final ${final}`,
        );
      }
    } finally {
      await subs.close();
      await a.close();
      await b.close();
    }
  });

  it('a stale owner writing dead letters while another takes the lease never writes after it', async () => {
    const subs = await PostgresSubscriptionStore.open(server.url);
    const a = await PostgresLeaseStore.open(server.url);
    const b = await PostgresLeaseStore.open(server.url);
    const offsets = async (name: string) =>
      (await subs.listDeadLetters(name, { limit: 10 })).map((l) => l.offset);
    try {
      for (let i = 0; i < 30; i++) {
        const name = `race-dl-${i}`;
        const at = new Date().toISOString();
        await subs.put({ name, version: 1, spec: {}, createdAt: at, updatedAt: at }, 0, []);
        await subs.addDeadLetters(name, [letter(0, 7)]); // an earlier letter, replayed by A below
        const old = (await a.acquire('A', [name], 40)).get(name) as number;
        await sleep(50); // A's lease expires; A does not know yet and writes as B takes over
        const [added, removed, seen] = await Promise.all([
          subs.addDeadLetters(name, [letter(0, 1)], old),
          subs.removeDeadLetters(name, [{ partition: 0, offset: 7 }], old),
          (async () => {
            await b.acquire('B', [name], 60_000);
            return offsets(name); // what B serves and replays from
          })(),
        ]);
        // What A wrote or removed before B took over, B saw; what came after was refused.
        assert.deepEqual(await offsets(name), seen, `round ${i}: changed after the takeover`);
        assert.equal(seen.includes(1), added, `round ${i}: letter written ${added}, B saw ${seen.join(',')}`);
        assert.equal(
          !seen.includes(7),
          removed === 1,
          `round ${i}: removal ${removed}, B saw ${seen.join(',')}`,
        );
      }
    } finally {
      await subs.close();
      await a.close();
      await b.close();
    }
  });
}
