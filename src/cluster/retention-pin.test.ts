/** The retention pin follows the slowest committed cursor of every partition. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { LmdbSubscriptionStore } from '../adapters/embedded/subscriptions/index.ts';
import { RetentionPin, type PinTarget } from './retention-pin.ts';

it('pins each partition at the slowest committed cursor (first pending, else read position), and moves it on', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-pin-'));
  const store = LmdbSubscriptionStore.open(dir);
  try {
    const at = new Date().toISOString();
    const rec = (name: string) => ({ name, version: 1, spec: {}, createdAt: at, updatedAt: at });
    await store.put(rec('fast'), 0, [
      { partition: 0, next: 90, pending: [], anchors: [] },
      { partition: 1, next: 50, pending: [[40, 1]], anchors: [] },
    ]);
    await store.put(rec('slow'), 0, [
      { partition: 0, next: 60, pending: [[55, 2]], anchors: [] },
      { partition: 1, next: 70, pending: [], anchors: [] },
    ]);
    const pins: [number, number][] = [];
    const target: PinTarget = {
      partitions: 3,
      next: () => 100,
      pin: async (p, o) => void pins.push([p, o]),
    };
    const pin = new RetentionPin(store, target, (e) => assert.fail(String(e)));
    await pin.run();
    assert.deepEqual(pins, [
      [0, 55],
      [1, 40],
      [2, 100],
    ]);
    await pin.run();
    assert.equal(pins.length, 3, 'unchanged pins are not moved again');
    await store.saveCursors(new Map([['slow', [{ partition: 0, next: 95, pending: [], anchors: [] }]]]));
    await pin.run();
    assert.deepEqual(pins.slice(3), [[0, 90]]);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
