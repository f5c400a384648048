import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DecisionIndexEntry } from '../../../state/port.ts';
import { LmdbStateStore } from './lmdb-state-store.ts';

function entry(i: number, over: Partial<DecisionIndexEntry> = {}): DecisionIndexEntry {
  return {
    decisionId: `d-${i}`,
    revision: 1,
    partition: i % 4,
    offset: i,
    receivedAt: 1_700_000_000_000 + i * 7,
    portfolioId: `pf-${i % 10}`,
    strategyId: 'st',
    symbol: `S${i % 30}`,
    assetClass: i % 2 === 0 ? 'equity' : 'fx',
    type: 'trade',
    verdict: 'approved',
    priority: i % 10,
    topics: [`decisions.x.pf-${i % 10}`],
    ...over,
  };
}

test('LmdbStateStore keeps its environment under <dataDir>/state/', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-state-'));
  const store = await LmdbStateStore.open(dir);
  await store.close();
  assert.ok(existsSync(join(dir, 'state', 'data.mdb')));
  rmSync(dir, { recursive: true, force: true });
});

test('concurrent add() calls (group-committed by the writer) each resolve, deduplicate across batches and keep the last checkpoint', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-state-'));
  const store = await LmdbStateStore.open(dir);
  try {
    const batches = Array.from({ length: 20 }, (_, b) =>
      Array.from({ length: 50 }, (_, i) => entry(b * 50 + i)),
    );
    // The same decision revision in two concurrent batches is indexed once (the first one wins).
    const dup = entry(0, { offset: 99_999, receivedAt: 1 });
    await Promise.all([
      ...batches.map((b, k) => store.decisions.add(b, { 0: (k + 1) * 10 })),
      store.decisions.add([dup], { 1: 5 }),
    ]);
    assert.deepEqual(await store.decisions.counts(), { revisions: 1000, decisions: 1000 });
    assert.deepEqual(await store.decisions.checkpoint(), { 0: 200, 1: 5 });
    assert.deepEqual(await store.decisions.get('d-0'), entry(0));
    const page = await store.decisions.query(
      { portfolioId: 'pf-3', assetClass: 'fx' },
      { limit: 1000, order: 'desc' },
    );
    assert.equal(page.entries.length, 100);
    assert.equal(page.next, undefined);
    assert.ok(page.entries.every((e) => e.portfolioId === 'pf-3' && e.assetClass === 'fx'));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('add() after close() rejects with SHUTTING_DOWN', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-state-'));
  const store = await LmdbStateStore.open(dir);
  await store.close();
  await assert.rejects(store.decisions.add([entry(1)], {}), { code: 'SHUTTING_DOWN' });
  rmSync(dir, { recursive: true, force: true });
});

test('a skipped duplicate carrying values new to the dictionary does not shift the values of the entries after it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-state-'));
  const store = await LmdbStateStore.open(dir);
  try {
    await store.decisions.add([entry(1)], {});
    const dup = entry(1, { portfolioId: 'pf-dup-new', symbol: 'SYM-dup-new', offset: 50 });
    const fresh = entry(2, { portfolioId: 'pf-fresh', symbol: 'SYM-fresh', topics: ['a.b', 'c.d'] });
    await store.decisions.add([dup, fresh], {});
    assert.deepEqual(await store.decisions.get('d-1'), entry(1));
    assert.deepEqual(await store.decisions.get('d-2'), fresh);
    const page = await store.decisions.query(
      { portfolioId: 'pf-fresh', topic: 'c.*' },
      { limit: 10, order: 'asc' },
    );
    assert.deepEqual(page.entries, [fresh]);
    assert.deepEqual(
      await store.decisions.query({ portfolioId: 'pf-dup-new' }, { limit: 10, order: 'asc' }),
      { entries: [] },
    );
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reopening truncates row and id files to what the last commit recorded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-state-'));
  let store = await LmdbStateStore.open(dir);
  try {
    const batch = Array.from({ length: 700 }, (_, i) => entry(i));
    await store.decisions.add(batch, { 0: 700 });
    await store.close();
    // A crash after the rows were written but before their commit leaves bytes past the recorded lengths.
    appendFileSync(join(dir, 'state', 'decision-rows.bin'), Buffer.alloc(64 * 3, 7));
    appendFileSync(join(dir, 'state', 'decision-ids.bin'), 'junk');
    store = await LmdbStateStore.open(dir);
    assert.equal(statSync(join(dir, 'state', 'decision-rows.bin')).size, 64 * 700);
    await store.decisions.add([entry(700)], { 0: 701 });
    assert.deepEqual(await store.decisions.get('d-700'), entry(700));
    assert.deepEqual(await store.decisions.counts(), { revisions: 701, decisions: 701 });
    const all = await store.decisions.query({ latestOnly: false }, { limit: 1000, order: 'desc' });
    assert.equal(all.entries.length, 701);
    assert.deepEqual(all.entries[0], entry(700));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('revisions, get, deduplication and latestOnly hold across flushed and merged id runs and a reopen', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-state-'));
  let store = await LmdbStateStore.open(dir, { idFlushRows: 50 });
  try {
    // 30 batches of 40: every decision d gets revision 2 two batches later; each batch repeats one entry.
    const all: DecisionIndexEntry[] = [];
    for (let b = 0; b < 30; b++) {
      const batch: DecisionIndexEntry[] = [];
      for (let i = 0; i < 30; i++) batch.push(entry(b * 30 + i, { offset: all.length + batch.length }));
      if (b >= 2)
        for (let i = 0; i < 10; i++) {
          const d = (b - 2) * 30 + i;
          batch.push(entry(d, { revision: 2, offset: all.length + batch.length, type: 'amend' }));
        }
      await store.decisions.add([...batch, batch[0] as DecisionIndexEntry], { 0: b });
      all.push(...batch);
    }
    const check = async (): Promise<void> => {
      assert.deepEqual(await store.decisions.counts(), { revisions: all.length, decisions: 900 });
      const revs = await store.decisions.revisions(['d-0', 'd-15', 'd-875', 'nope']);
      assert.deepEqual(
        revs.get('d-0')?.map((r) => r.revision),
        [1, 2],
      );
      assert.deepEqual(
        revs.get('d-15')?.map((r) => r.revision),
        [1],
      );
      assert.equal(revs.has('nope'), false);
      assert.equal((await store.decisions.get('d-0'))?.type, 'amend');
      assert.equal((await store.decisions.get('d-0', 1))?.type, 'trade');
      const latest = await store.decisions.query({ portfolioId: 'pf-0' }, { limit: 1000, order: 'asc' });
      assert.equal(latest.entries.length, 90);
      const amended = (d: number): boolean => d % 30 < 10 && Math.floor(d / 30) < 28;
      assert.deepEqual(
        latest.entries.map((e) => `${e.decisionId}@${e.revision}`).sort(),
        Array.from({ length: 90 }, (_, k) => `d-${k * 10}@${amended(k * 10) ? 2 : 1}`).sort(),
      );
    };
    await check();
    // The newest rows are in the main thread's memory table (not yet flushed): each at its own row.
    for (const e of all.slice(-45)) assert.deepEqual(await store.decisions.get(e.decisionId, e.revision), e);
    assert.ok(readdirSync(join(dir, 'state')).filter((f) => f.startsWith('decision-idrun-')).length >= 1);
    await store.close();
    store = await LmdbStateStore.open(dir, { idFlushRows: 50 });
    await check();
    await store.decisions.add([all[5] as DecisionIndexEntry], {});
    await check();
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
