/**
 * The LeaseStore contract suite (STYLE habit 2; ADR 0014): acquisition, renewal, expiry, takeover,
 * release, fencing tokens and members. Names are unique per case, so a shared database may hold other
 * rows. Leases need their subscriptions to exist, so the subject brings a SubscriptionStore on the
 * same database.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { LeaseStore } from './leases-port.ts';
import type { SubscriptionStore } from './subscriptions-port.ts';

/** What an adapter's `open` gives the suite. */
export interface LeaseContractSubject {
  /** Two stores on one database, as two instances would have. */
  readonly a: LeaseStore;
  readonly b: LeaseStore;
  readonly subscriptions: SubscriptionStore;
  readonly cleanup: () => Promise<void>;
}

const uniq = (p: string) => `${p}-${randomBytes(5).toString('hex')}`;

/** Registers the contract cases for one adapter. */
export function leaseStoreContract(name: string, open: () => Promise<LeaseContractSubject>): void {
  describe(`LeaseStore contract: ${name}`, () => {
    let s: LeaseContractSubject;
    const subscription = async (): Promise<string> => {
      const n = uniq('sub');
      const at = new Date().toISOString();
      await s.subscriptions.put({ name: n, version: 1, spec: {}, createdAt: at, updatedAt: at }, 0);
      return n;
    };
    before(async () => {
      s = await open();
    });
    after(async () => {
      await s?.a.close();
      await s?.b.close();
      await s?.subscriptions.close();
      await s?.cleanup();
    });

    it('one owner at a time: held leases are refused to others and renewed by their owner', async () => {
      const n = await subscription();
      const got = await s.a.acquire('A', [n, uniq('absent')], 5_000);
      assert.deepEqual([...got.keys()], [n], 'unknown subscriptions are left out');
      const token = got.get(n) as number;
      assert.ok(token > 0);
      assert.equal((await s.b.acquire('B', [n], 5_000)).size, 0);
      assert.deepEqual([...(await s.a.renew('A', new Map([[n, token]]), 5_000))], [n]);
      assert.deepEqual(await s.a.renew('B', new Map([[n, token]]), 5_000), new Set(), 'not the owner');
      assert.deepEqual(await s.a.renew('A', new Map([[n, token + 1]]), 5_000), new Set(), 'not the token');
      const [view] = await s.b.leases([n]);
      assert.equal(view?.owner, 'A');
      assert.equal(view?.token, token);
    });

    it('an expired lease is free: another owner takes it with a greater token, the old owner cannot renew it', async () => {
      const n = await subscription();
      const t1 = (await s.a.acquire('A', [n], 200)).get(n) as number;
      await sleep(300);
      assert.equal((await s.b.leases([n]))[0]?.owner, null);
      const t2 = (await s.b.acquire('B', [n], 5_000)).get(n) as number;
      assert.ok(t2 > t1, `token ${t2} after ${t1}`);
      assert.deepEqual(await s.a.renew('A', new Map([[n, t1]]), 5_000), new Set());
      assert.equal((await s.a.leases([n]))[0]?.owner, 'B');
    });

    it('an expired lease not yet taken cannot be renewed either (its owner stopped already)', async () => {
      const n = await subscription();
      const t1 = (await s.a.acquire('A', [n], 150)).get(n) as number;
      await sleep(250);
      assert.deepEqual(await s.a.renew('A', new Map([[n, t1]]), 5_000), new Set());
    });

    it('release frees a lease at once; a stale token or another owner releases nothing', async () => {
      const n = await subscription();
      const t1 = (await s.a.acquire('A', [n], 60_000)).get(n) as number;
      await s.b.release('B', new Map([[n, t1]]));
      await s.a.release('A', new Map([[n, t1 + 1]]));
      assert.equal((await s.b.acquire('B', [n], 60_000)).size, 0, 'still held by A');
      await s.a.release('A', new Map([[n, t1]]));
      const t2 = (await s.b.acquire('B', [n], 60_000)).get(n) as number;
      assert.ok(t2 > t1);
    });

    it('an owner may take its own lease again, with a new token (the old token is then stale)', async () => {
      const n = await subscription();
      const t1 = (await s.a.acquire('A', [n], 60_000)).get(n) as number;
      const t2 = (await s.a.acquire('A', [n], 60_000)).get(n) as number;
      assert.ok(t2 > t1);
      assert.deepEqual(await s.a.renew('A', new Map([[n, t1]]), 60_000), new Set());
    });

    it('concurrent acquisitions of one free lease: exactly one wins', async () => {
      const names = await Promise.all(Array.from({ length: 5 }, () => subscription()));
      for (const n of names) {
        const [x, y] = await Promise.all([s.a.acquire('A', [n], 60_000), s.b.acquire('B', [n], 60_000)]);
        assert.equal(x.size + y.size, 1, n);
      }
    });

    it('a deleted subscription has no lease; its owner loses it at the next renewal', async () => {
      const n = await subscription();
      const t = (await s.a.acquire('A', [n], 60_000)).get(n) as number;
      await s.subscriptions.delete(n);
      assert.deepEqual(await s.a.renew('A', new Map([[n, t]]), 60_000), new Set());
      assert.deepEqual(await s.a.leases([n]), []);
    });

    it('members: heartbeats list the live ones; an expired or departed member is not listed', async () => {
      const m1 = uniq('m');
      const m2 = uniq('m');
      assert.ok((await s.a.heartbeat({ id: m1, url: 'http://a:1', grpc: 'a:2' }, 60_000)).includes(m1));
      assert.ok((await s.b.heartbeat({ id: m2 }, 200)).includes(m1));
      const n = await subscription();
      await s.a.acquire(m1, [n], 60_000);
      assert.deepEqual((await s.b.leases([n]))[0]?.address, { url: 'http://a:1', grpc: 'a:2' });
      await sleep(300);
      const live = await s.a.heartbeat({ id: m1, url: 'http://a:1', grpc: 'a:2' }, 60_000);
      assert.ok(live.includes(m1) && !live.includes(m2), live.join(','));
      await s.a.leave(m1);
      assert.ok(!(await s.b.heartbeat({ id: m2 }, 60_000)).includes(m1));
      assert.equal((await s.b.leases([n]))[0]?.address, undefined, 'no address of a departed owner');
    });
  });
}
