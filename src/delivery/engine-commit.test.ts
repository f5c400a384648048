/**
 * The timer's cursor commit under a main-thread budget (ADR 0009): it stops taking subscriptions once
 * the budget is spent and the next one goes on where it stopped, so every subscription is committed
 * in turn; an explicit commit (shutdown, operator actions) still takes every dirty subscription.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SegmentLog } from '../adapters/embedded/log/segment-log.ts';
import { LmdbSubscriptionStore } from '../adapters/embedded/subscriptions/lmdb-subscription-store.ts';
import type { CursorSnapshot } from '../state/subscriptions-port.ts';
import { SPEC_DEFAULTS, type SubscriptionSpec } from '../subscriptions/spec.ts';
import { DeliveryEngine } from './engine.ts';
import type { SubscriptionRuntime } from './runtime.ts';

test('a budgeted commit takes subscriptions in turn; an explicit one takes them all', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cds-engine-commit-'));
  const log = await SegmentLog.open(join(dir, 'log'));
  const store = LmdbSubscriptionStore.open(join(dir, 'state'));
  t.after(async () => {
    await store.close();
    await log.close();
    await rm(dir, { recursive: true, force: true });
  });
  const committed: string[][] = [];
  const save = store.saveCursors.bind(store);
  store.saveCursors = (entries: ReadonlyMap<string, readonly CursorSnapshot[]>) => {
    committed.push([...entries.keys()]);
    return save(entries);
  };
  const engine = new DeliveryEngine(log, store, { onError: (e) => assert.fail(String(e)) });
  const names = Array.from({ length: 7 }, (_, i) => `s${i}`);
  const runtimes: SubscriptionRuntime[] = [];
  for (const name of names) {
    const spec: SubscriptionSpec = {
      ...SPEC_DEFAULTS,
      name,
      topics: ['decisions.>'],
      start: { kind: 'latest' },
      state: 'active',
    };
    const now = new Date().toISOString();
    await store.put({ name, version: 1, spec: { ...spec }, createdAt: now, updatedAt: now }, 0);
    runtimes.push(engine.add(spec, []));
  }
  const dirtyAll = () => runtimes.forEach((rt) => (rt.dirty = true));

  // A spent budget still commits one subscription, then stops; the next commit starts after it.
  dirtyAll();
  for (let i = 0; i < 10; i++) await engine.commit(-1);
  assert.deepEqual(
    committed.splice(0).map((c) => c.join()),
    [...names, '', '', ''],
    'one per commit, in turn, then nothing dirty is left',
  );
  for (const name of names) assert.equal((await store.loadCursors(name)).length, 1, `${name} stored`);

  // The round robin goes on from where it stopped (ten turns of seven: at s3), across the end of the list.
  dirtyAll();
  await engine.commit(-1);
  await engine.commit(-1);
  dirtyAll();
  await engine.commit();
  assert.deepEqual(
    committed.map((c) => c.join()),
    ['s3', 's4', ['s5', 's6', 's0', 's1', 's2', 's3', 's4'].join()],
    'two in turn, then the explicit commit takes every dirty one, from where the turn had got to',
  );
  await engine.close();
});
