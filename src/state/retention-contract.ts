/**
 * The RetentionPolicyStore contract suite (STYLE habit 2): `node:test` cases every adapter passes
 * unchanged. Names are unique per case, so a shared database may hold other rows.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isCdsError } from '../errors/index.ts';
import type { RetentionPolicyRecord, RetentionPolicyStore } from './retention-port.ts';

/** What an adapter's `open` gives the suite. */
export interface RetentionContractSubject {
  readonly store: RetentionPolicyStore;
  /** Opens the same store again after the suite closed it. */
  readonly reopen?: () => Promise<RetentionPolicyStore>;
  readonly cleanup: () => Promise<void>;
}

const uniq = (p: string) => `${p}-${randomBytes(5).toString('hex')}`;

function rec(name: string, version = 1, extra: Partial<RetentionPolicyRecord> = {}): RetentionPolicyRecord {
  const at = new Date().toISOString();
  return {
    name,
    version,
    pattern: `decisions.${name}.>`,
    maxAgeMs: 60_000,
    onUnacknowledged: 'wait',
    createdAt: at,
    updatedAt: at,
    updatedBy: 'p-test',
    ...extra,
  };
}

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => isCdsError(e) && e.code === code);
}

/** Registers the contract cases for one adapter; `opts.skip` maps a case title to the reason it is skipped. */
export function retentionStoreContract(
  name: string,
  open: () => Promise<RetentionContractSubject>,
  opts: { skip?: Record<string, string> } = {},
): void {
  const skip = opts.skip ?? {};
  const test = (title: string, fn: () => Promise<void>): void => {
    const reason = skip[title];
    it(title, reason === undefined ? {} : { skip: reason }, fn);
  };
  describe(`RetentionPolicyStore contract: ${name}`, () => {
    let subject: RetentionContractSubject;
    let store: RetentionPolicyStore;
    before(async () => {
      subject = await open();
      store = subject.store;
    });
    after(async () => {
      await store?.close();
      await subject?.cleanup();
    });

    test('a policy is created at version 1 and read back whole', async () => {
      const n = uniq('create');
      const r = rec(n, 1, { maxBytes: 1024, maxCount: 10, onUnacknowledged: 'drop' });
      await store.put(r);
      assert.deepEqual(await store.get(n), r);
      assert.ok((await store.list()).some((x) => x.name === n));
      assert.equal(await store.get(uniq('absent')), undefined);
    });

    test('creating a taken name is ALREADY_EXISTS and changes nothing', async () => {
      const n = uniq('taken');
      await store.put(rec(n));
      await rejects(store.put(rec(n, 1, { maxAgeMs: 1 })), 'ALREADY_EXISTS');
      assert.equal((await store.get(n))?.maxAgeMs, 60_000);
    });

    test('a change must name the next version; any other is VERSION_CONFLICT', async () => {
      const n = uniq('versions');
      await store.put(rec(n));
      await store.put(rec(n, 2, { maxAgeMs: 5 }));
      assert.equal((await store.get(n))?.version, 2);
      await rejects(store.put(rec(n, 2, { maxAgeMs: 6 })), 'VERSION_CONFLICT');
      await rejects(store.put(rec(n, 4)), 'VERSION_CONFLICT');
      await rejects(store.put(rec(uniq('never'), 3)), 'VERSION_CONFLICT');
      const got = await store.get(n);
      assert.equal(got?.version, 2);
      assert.equal(got?.maxAgeMs, 5);
    });

    test('absent limits stay absent (no limit is not a zero limit)', async () => {
      const n = uniq('bare');
      const r: RetentionPolicyRecord = { ...rec(n), maxAgeMs: undefined } as RetentionPolicyRecord;
      const { maxAgeMs: _, ...bare } = r;
      await store.put(bare);
      const got = await store.get(n);
      assert.ok(got !== undefined);
      assert.equal('maxAgeMs' in got, false);
      assert.equal('maxCount' in got, false);
      await store.put(rec(n, 2, { maxCount: 0 }));
      assert.equal((await store.get(n))?.maxCount, 0);
    });

    test('delete removes; a wrong expected version removes nothing', async () => {
      const n = uniq('delete');
      await store.put(rec(n));
      await rejects(store.delete(n, 7), 'VERSION_CONFLICT');
      assert.ok((await store.get(n)) !== undefined);
      assert.equal(await store.delete(n, 1), true);
      assert.equal(await store.get(n), undefined);
      assert.equal(await store.delete(n), false);
      await store.put(rec(n));
      assert.equal((await store.get(n))?.version, 1, 'a deleted name can be created again');
    });

    test('list is by name ascending', async () => {
      const p = uniq('list');
      for (const s of ['c', 'a', 'b']) await store.put(rec(`${p}-${s}`));
      const names = (await store.list()).map((r) => r.name).filter((x) => x.startsWith(p));
      assert.deepEqual(names, [`${p}-a`, `${p}-b`, `${p}-c`]);
    });

    test('policies survive a reopen', async () => {
      if (subject.reopen === undefined) return;
      const n = uniq('reopen');
      await store.put(rec(n, 1, { maxCount: 3 }));
      await store.close();
      store = await subject.reopen();
      assert.equal((await store.get(n))?.maxCount, 3);
    });
  });
}
