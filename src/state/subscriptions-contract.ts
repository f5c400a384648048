/**
 * The SubscriptionStore contract suite (STYLE habit 2): `node:test` cases every adapter passes
 * unchanged. Names are unique per case, so a shared database may hold other rows.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isCdsError } from '../errors/index.ts';
import type { LeaseStore } from './leases-port.ts';
import type {
  CursorSnapshot,
  DeadLetter,
  SubscriptionRecord,
  SubscriptionStore,
} from './subscriptions-port.ts';

/** The title of the fencing case, which does not apply to an adapter without leases (it says why). */
export const STALE_TOKEN_CASE = 'a cursor commit with a stale fencing token is refused and writes nothing';
/** The title of the dead-letter fencing case (likewise only for adapters with leases). */
export const STALE_LETTERS_CASE = 'dead letters written or removed with a stale fencing token change nothing';

/** What an adapter's `open` gives the suite. */
export interface SubscriptionContractSubject {
  readonly store: SubscriptionStore;
  /** The leases of the same database, where the adapter supports them (cluster mode, ADR 0014). */
  readonly leases?: LeaseStore;
  /** Opens the same store again after the suite closed it. */
  readonly reopen?: () => Promise<SubscriptionStore>;
  readonly cleanup: () => Promise<void>;
}

const uniq = (p: string) => `${p}-${randomBytes(5).toString('hex')}`;

function rec(name: string, version = 1): SubscriptionRecord {
  const at = new Date().toISOString();
  return {
    name,
    version,
    spec: { topics: ['a.>'], filter: 'decision.priority > 1' },
    createdAt: at,
    updatedAt: at,
  };
}

/** A dead letter at `offset` of `partition` (contract cases and the lease race tests). */
export function letter(partition: number, offset: number): DeadLetter {
  return {
    partition,
    offset,
    key: 'k',
    decisionId: `d-${offset}`,
    revision: 1,
    reason: 'max_deliveries',
    deliveryCount: 3,
    at: new Date().toISOString(),
  };
}

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => isCdsError(e) && e.code === code);
}

/**
 * Registers the contract cases for one adapter. `opts.skip` maps a case title that does not apply to
 * the adapter to the reason (kept in the adapter's test file); such a case is not registered at all,
 * so that a CI run, where any skipped test is a failure, reports no skip for it.
 */
export function subscriptionStoreContract(
  name: string,
  open: () => Promise<SubscriptionContractSubject>,
  opts: { skip?: Record<string, string> } = {},
): void {
  const skip = opts.skip ?? {};
  const test = (title: string, fn: () => Promise<void>): void => {
    if (skip[title] !== undefined) return; // does not apply to this adapter (see its reason)
    it(title, fn);
  };
  describe(`SubscriptionStore contract: ${name}`, () => {
    let subject: SubscriptionContractSubject;
    let store: SubscriptionStore;
    before(async () => {
      subject = await open();
      store = subject.store;
    });
    after(async () => {
      await store?.close();
      await subject?.leases?.close();
      await subject?.cleanup();
    });

    test('put creates, get and list return it; versions are checked', async () => {
      const n = uniq('s');
      const cursors: CursorSnapshot[] = [{ partition: 0, next: 5, pending: [[3, 2]], anchors: [['k', 1]] }];
      await store.put(rec(n), 0, cursors);
      assert.equal((await store.get(n))?.version, 1);
      assert.ok((await store.list()).some((r) => r.name === n));
      assert.deepEqual(await store.loadCursors(n), cursors);
      await rejects(store.put(rec(n), 0), 'ALREADY_EXISTS');
      await rejects(store.put(rec(n, 3), 2), 'VERSION_CONFLICT');
      await rejects(store.put(rec(uniq('absent'), 2), 1), 'NOT_FOUND');
      await store.put({ ...rec(n, 2), spec: { topics: ['b'] } }, 1);
      assert.deepEqual((await store.get(n))?.spec, { topics: ['b'] });
      assert.deepEqual(await store.loadCursors(n), cursors, 'a put without cursors keeps them');
    });

    test('saveCursors replaces per partition, atomically for several subscriptions', async () => {
      const a = uniq('a');
      const b = uniq('b');
      await store.put(rec(a), 0, [{ partition: 0, next: 0, pending: [], anchors: [] }]);
      await store.put(rec(b), 0);
      const ca: CursorSnapshot[] = [
        { partition: 0, next: 10, pending: [], anchors: [] },
        {
          partition: 1,
          next: 7,
          pending: [
            [4, 1],
            [6, 3],
          ],
          anchors: [['x', 2]],
        },
      ];
      const cb: CursorSnapshot[] = [{ partition: 2, next: 1, pending: [], anchors: [] }];
      await store.saveCursors(
        new Map([
          [a, ca],
          [b, cb],
          [uniq('ghost'), cb],
        ]),
      );
      assert.deepEqual(await store.loadCursors(a), ca);
      assert.deepEqual(await store.loadCursors(b), cb);
    });

    test('a fenced commit with the current token is written; without leases any token is current', async () => {
      const n = uniq('f');
      await store.put(rec(n), 0);
      const token =
        subject.leases === undefined ? 7 : (await subject.leases.acquire('me', [n], 60_000)).get(n);
      assert.ok(token !== undefined);
      const c: CursorSnapshot[] = [{ partition: 0, next: 4, pending: [[2, 1, null]], anchors: [['k', 1]] }];
      assert.deepEqual(await store.saveCursors(new Map([[n, c]]), new Map([[n, token]])), []);
      assert.deepEqual(await store.loadCursors(n), c);
    });

    test(STALE_TOKEN_CASE, async () => {
      const leases = subject.leases;
      assert.ok(leases, 'an adapter with leases gives them to the suite');
      const a = uniq('stale');
      const b = uniq('other');
      await store.put(rec(a), 0, [{ partition: 0, next: 1, pending: [], anchors: [] }]);
      await store.put(rec(b), 0);
      const old = (await leases.acquire('A', [a], 100)).get(a) as number;
      await new Promise((r) => setTimeout(r, 200)); // A's lease expires; B takes it
      const cur = (await leases.acquire('B', [a], 60_000)).get(a) as number;
      assert.ok(cur > old);
      const stale: CursorSnapshot[] = [{ partition: 0, next: 99, pending: [], anchors: [] }];
      const other: CursorSnapshot[] = [{ partition: 0, next: 5, pending: [], anchors: [] }];
      // One commit: the stale name is refused and listed; an unfenced name in it is written.
      const refused = await store.saveCursors(
        new Map([
          [a, stale],
          [b, other],
        ]),
        new Map([[a, old]]),
      );
      assert.deepEqual(refused, [a]);
      assert.deepEqual(await store.loadCursors(a), [{ partition: 0, next: 1, pending: [], anchors: [] }]);
      assert.deepEqual(await store.loadCursors(b), other);
      const fresh: CursorSnapshot[] = [{ partition: 0, next: 7, pending: [], anchors: [] }];
      assert.deepEqual(await store.saveCursors(new Map([[a, fresh]]), new Map([[a, cur]])), []);
      assert.deepEqual(await store.loadCursors(a), fresh);
    });

    test(STALE_LETTERS_CASE, async () => {
      const leases = subject.leases;
      assert.ok(leases, 'an adapter with leases gives them to the suite');
      const n = uniq('stale-dl');
      await store.put(rec(n), 0);
      const old = (await leases.acquire('A', [n], 100)).get(n) as number;
      assert.equal(await store.addDeadLetters(n, [letter(0, 1)], old), true);
      await new Promise((r) => setTimeout(r, 200)); // A's lease expires; B takes it
      const cur = (await leases.acquire('B', [n], 60_000)).get(n) as number;
      assert.ok(cur > old);
      assert.equal(await store.addDeadLetters(n, [letter(0, 2)], old), false);
      assert.equal(await store.removeDeadLetters(n, [{ partition: 0, offset: 1 }], old), false);
      assert.deepEqual(
        (await store.listDeadLetters(n, { limit: 10 })).map((l) => l.offset),
        [1],
      );
      assert.equal(await store.addDeadLetters(n, [letter(0, 3)], cur), true);
      assert.equal(await store.removeDeadLetters(n, [{ partition: 0, offset: 1 }], cur), 1);
      assert.deepEqual(
        (await store.listDeadLetters(n, { limit: 10 })).map((l) => l.offset),
        [3],
      );
    });

    test('dead letters: add, list in order with paging, remove, purge', async () => {
      const n = uniq('d');
      await store.put(rec(n), 0);
      await store.addDeadLetters(n, [letter(1, 5), letter(0, 9), letter(0, 2)]);
      await store.addDeadLetters(n, [{ ...letter(0, 2), deliveryCount: 7 }]);
      const all = await store.listDeadLetters(n, { limit: 10 });
      assert.deepEqual(
        all.map((l) => [l.partition, l.offset]),
        [
          [0, 2],
          [0, 9],
          [1, 5],
        ],
      );
      assert.equal(all[0]?.deliveryCount, 7);
      const page = await store.listDeadLetters(n, { after: { partition: 0, offset: 2 }, limit: 1 });
      assert.deepEqual(
        page.map((l) => l.offset),
        [9],
      );
      assert.equal(
        await store.removeDeadLetters(n, [
          { partition: 0, offset: 9 },
          { partition: 3, offset: 3 },
        ]),
        1,
      );
      assert.equal(await store.purgeDeadLetters(n), 2);
      assert.deepEqual(await store.listDeadLetters(n, { limit: 10 }), []);
    });

    test('delete removes the subscription, its cursors and its dead letters', async () => {
      const n = uniq('x');
      await store.put(rec(n), 0, [{ partition: 0, next: 3, pending: [], anchors: [] }]);
      await store.addDeadLetters(n, [letter(0, 1)]);
      assert.equal(await store.delete(n), true);
      assert.equal(await store.delete(n), false);
      assert.equal(await store.get(n), undefined);
      assert.deepEqual(await store.loadCursors(n), []);
      assert.deepEqual(await store.listDeadLetters(n, { limit: 5 }), []);
    });

    test('what was stored is there after a reopen', async () => {
      if (subject.reopen === undefined) return;
      const n = uniq('r');
      const cursors: CursorSnapshot[] = [{ partition: 0, next: 2, pending: [[1, 1]], anchors: [] }];
      await store.put(rec(n), 0, cursors);
      await store.close();
      store = await subject.reopen();
      assert.equal((await store.get(n))?.name, n);
      assert.deepEqual(await store.loadCursors(n), cursors);
    });
  });
}
