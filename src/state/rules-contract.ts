/**
 * The RuleStore contract suite (STYLE habit 2): `node:test` cases every adapter passes unchanged.
 * The store has one sequence of versions, so each case works relative to `latest()` and leaves the
 * store usable by the next.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isCdsError } from '../errors/index.ts';
import type { ActivePointer, RuleSetRecord, RuleStore } from './rules-port.ts';

/** What an adapter's `open` gives the suite. */
export interface RuleContractSubject {
  readonly store: RuleStore;
  /** Opens the same store again after the suite closed it. */
  readonly reopen?: () => Promise<RuleStore>;
  readonly cleanup: () => Promise<void>;
}

function rec(version: number, rules: unknown[] = []): RuleSetRecord {
  return {
    version,
    ruleSet: { rules, defaultRoute: 'decisions.{portfolioId}' },
    createdAt: new Date().toISOString(),
    createdBy: 'p-test',
    comment: `v${version}`,
  };
}

const pointer = (version: number): ActivePointer => ({
  version,
  activatedAt: new Date().toISOString(),
  activatedBy: 'p-test',
});

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => isCdsError(e) && e.code === code);
}

/** Registers the contract cases for one adapter; `opts.skip` maps a case title to the reason it is skipped. */
export function ruleStoreContract(
  name: string,
  open: () => Promise<RuleContractSubject>,
  opts: { skip?: Record<string, string> } = {},
): void {
  const skip = opts.skip ?? {};
  const test = (title: string, fn: () => Promise<void>): void => {
    const reason = skip[title];
    it(title, reason === undefined ? {} : { skip: reason }, fn);
  };
  describe(`RuleStore contract: ${name}`, () => {
    let subject: RuleContractSubject;
    let store: RuleStore;
    before(async () => {
      subject = await open();
      store = subject.store;
    });
    after(async () => {
      await store?.close();
      await subject?.cleanup();
    });

    test('versions are created in sequence; a gap or a repeat is VERSION_CONFLICT', async () => {
      const n = (await store.latest()) + 1;
      await store.create(rec(n, [{ id: 'a' }]));
      assert.equal(await store.latest(), n);
      assert.deepEqual((await store.get(n))?.ruleSet, rec(n, [{ id: 'a' }]).ruleSet);
      assert.equal((await store.get(n))?.comment, `v${n}`);
      await rejects(store.create(rec(n)), 'VERSION_CONFLICT');
      await rejects(store.create(rec(n + 2)), 'VERSION_CONFLICT');
      assert.equal(await store.get(n + 2), undefined);
      assert.equal(await store.latest(), n);
    });

    test('list is newest first, bounded, and pages with before', async () => {
      const n = (await store.latest()) + 1;
      for (let v = n; v < n + 3; v++) await store.create(rec(v));
      const all = await store.list({ limit: 3 });
      assert.deepEqual(
        all.map((r) => r.version),
        [n + 2, n + 1, n],
      );
      const page = await store.list({ before: n + 2, limit: 1 });
      assert.deepEqual(
        page.map((r) => r.version),
        [n + 1],
      );
    });

    test('create with activation sets the pointer in the same write; activate checks versions', async () => {
      const n = (await store.latest()) + 1;
      await store.create(rec(n), pointer(n));
      assert.equal((await store.active())?.version, n);
      await rejects(store.activate(pointer(n + 5)), 'NOT_FOUND');
      assert.equal((await store.active())?.version, n, 'an unknown version leaves the pointer');
      await rejects(store.activate(pointer(n - 1 > 0 ? n - 1 : 0), n + 1), 'VERSION_CONFLICT');
      assert.equal((await store.active())?.version, n);
      await store.activate(pointer(0), n);
      assert.equal((await store.active())?.version, 0, 'version 0 (built-in) needs no record');
      await store.activate(pointer(n));
      assert.equal((await store.active())?.activatedBy, 'p-test');
    });

    test('versions and the pointer survive a reopen', async () => {
      if (subject.reopen === undefined) return;
      const n = (await store.latest()) + 1;
      await store.create(rec(n), pointer(n));
      await store.close();
      store = await subject.reopen();
      assert.equal(await store.latest(), n);
      assert.equal((await store.active())?.version, n);
      assert.equal((await store.get(n))?.version, n);
    });
  });
}
