/**
 * The LedgerStore contract suite (STYLE habit 2): `node:test` cases every adapter passes unchanged.
 * Each case uses subscription names of its own, so the cases share one c.store. The ledger's
 * retention (pruner.ts) runs on each adapter's store too, a store of its own.
 */
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { contractSuite, type ContractSubject } from '../state/contract-suite.ts';
import type { CommitRecord, CommitRecordAt, LedgerStore } from './port.ts';
import { LedgerPruneMetrics, LedgerPruner } from './pruner.ts';

/** What an adapter's `open` gives the suite. */
export type LedgerContractSubject = ContractSubject<LedgerStore>;

const T0 = Date.UTC(2026, 0, 1);

function at(subscription: string, partition: number, record: CommitRecord): CommitRecordAt {
  return { subscription, partition, record };
}

/** A record spanning [lo, hi), committed at T0 + dt, that resolved its span. */
function span(lo: number, hi: number, dt = 0): CommitRecord {
  return { t: T0 + dt, lo, hi, r: [lo, hi], d: [], x: [] };
}

/** Registers the contract cases for one adapter; `opts.skip` maps a case title to the reason it is skipped. */
export function ledgerStoreContract(
  name: string,
  open: () => Promise<LedgerContractSubject>,
  opts: { skip?: Record<string, string> } = {},
): void {
  contractSuite(`LedgerStore contract: ${name}`, open, opts.skip, (c) => {
    const { test } = c;

    test('a record comes back whole, optional loss ranges included', async () => {
      const full: CommitRecord = {
        t: T0 + 1,
        lo: 10,
        hi: 40,
        r: [10, 12, 15, 20],
        d: [20, 25, 30, 31],
        x: [
          [11, 'expired'],
          [16, 'deadLettered'],
        ],
      };
      const lost: CommitRecord = { t: T0 + 2, lo: 50, hi: 60, r: [], d: [], x: [], l: [50, 60] };
      await c.store.append([at('whole', 0, full), at('whole', 0, lost)]);
      assert.deepEqual(await c.store.find('whole', 0, 11, 100), [full]);
      assert.deepEqual(await c.store.find('whole', 0, 55, 100), [lost]);
      const [got] = await c.store.find('whole', 0, 55, 100);
      assert.equal(got !== undefined && 'l' in got, true);
      assert.equal('l' in ((await c.store.find('whole', 0, 39, 100))[0] as object), false);
    });

    test('find returns the records whose span contains the offset, the largest lo first', async () => {
      await c.store.append([
        at('spans', 0, span(0, 10)),
        at('spans', 0, span(5, 8, 1)),
        at('spans', 0, span(7, 20, 2)),
        at('spans', 0, span(8, 9, 3)), // starts after the offset
        at('spans', 0, span(2, 7, 4)), // ends at the offset (half-open)
      ]);
      const found = await c.store.find('spans', 0, 7, 100);
      assert.deepEqual(
        found.map((r) => [r.lo, r.hi]),
        [
          [7, 20],
          [5, 8],
          [0, 10],
        ],
      );
      assert.deepEqual(await c.store.find('spans', 0, 20, 100), []);
      assert.deepEqual(await c.store.find('spans', 0, -1, 100), []);
    });

    test('records of equal lo come newest first', async () => {
      await c.store.append([at('ties', 0, span(3, 9, 5)), at('ties', 0, span(3, 4, 1))]);
      await c.store.append([at('ties', 0, span(3, 6, 9))]);
      assert.deepEqual(
        (await c.store.find('ties', 0, 3, 100)).map((r) => r.t - T0),
        [9, 5, 1],
      );
    });

    test('subscriptions and partitions are apart, also names that prefix each other', async () => {
      await c.store.append([
        at('ab', 0, span(0, 100, 1)),
        at('a', 0, span(0, 100, 2)),
        at('a', 1, span(0, 100, 3)),
        at('a.b', 0, span(0, 100, 4)),
      ]);
      assert.deepEqual(
        (await c.store.find('a', 0, 50, 100)).map((r) => r.t - T0),
        [2],
      );
      assert.deepEqual(
        (await c.store.find('a', 1, 50, 100)).map((r) => r.t - T0),
        [3],
      );
      assert.deepEqual(await c.store.find('a', 2, 50, 100), []);
      assert.deepEqual(await c.store.find('nobody', 0, 50, 100), []);
    });

    test('find examines at most maxScan records, starting from the largest lo', async () => {
      const many: CommitRecordAt[] = [];
      for (let lo = 0; lo < 10; lo++) many.push(at('scan', 0, span(lo, lo === 9 ? 10 : 100, lo)));
      await c.store.append(many);
      // The three records examined are lo 9 (ends before 50), 8 and 7.
      assert.deepEqual(
        (await c.store.find('scan', 0, 50, 3)).map((r) => r.lo),
        [8, 7],
      );
      assert.equal((await c.store.find('scan', 0, 50, 100)).length, 9);
    });

    test('one append stores a whole commit of many records; an empty append stores nothing', async () => {
      await c.store.append([]);
      const batch: CommitRecordAt[] = [];
      for (let i = 0; i < 2_000; i++)
        batch.push(
          at(`bulk-${i % 200}`, i % 8, { t: T0 + 7, lo: i, hi: i + 1, r: [i, i + 1], d: [], x: [] }),
        );
      await c.store.append(batch);
      for (const i of [0, 999, 1_999]) {
        const found = await c.store.find(`bulk-${i % 200}`, i % 8, i, 10);
        assert.deepEqual(found, [batch[i]?.record]);
      }
    });

    test('prune removes the records committed before a time and says how many', async () => {
      // Far in the past, so that no other case's records are older.
      const old = T0 - 86_400_000;
      await c.store.append([
        at('prune', 0, { ...span(0, 5), t: old - 2 }),
        at('prune', 0, { ...span(5, 10), t: old - 1 }),
        at('prune', 0, { ...span(10, 15), t: old }),
        at('prune', 1, span(0, 5)),
      ]);
      assert.equal(await c.store.prune(old - 1), 1);
      assert.deepEqual(await c.store.find('prune', 0, 2, 100), []);
      assert.equal((await c.store.find('prune', 0, 7, 100)).length, 1);
      assert.equal(await c.store.prune(old + 1), 2);
      assert.deepEqual(await c.store.find('prune', 0, 12, 100), []);
      assert.equal(await c.store.prune(old + 1), 0);
      assert.deepEqual(await c.store.find('prune', 1, 2, 100), [span(0, 5)], 'newer records stay');
    });

    test('prune removes in batches: more records than one batch, all of them, newer ones kept', async () => {
      const old = T0 - 2 * 86_400_000;
      const many: CommitRecordAt[] = [];
      for (let i = 0; i < 25_000; i++)
        many.push(at(`batch-${i % 7}`, i % 3, { ...span(i, i + 1), t: old - i }));
      await c.store.append(many);
      await c.store.append([at('batch-kept', 0, { ...span(0, 1), t: old + 1 })]);
      assert.equal(await c.store.prune(old + 1), 25_000);
      assert.deepEqual(await c.store.find('batch-0', 0, 0, 10), []);
      assert.equal((await c.store.find('batch-kept', 0, 0, 10)).length, 1);
      assert.equal(await c.store.prune(old + 1), 0);
    });

    test('nthNewestTime: the commit time of the n-th newest record, undefined beyond the count', async () => {
      // Later than every other case's records, so that they are the newest of the shared store.
      const future = T0 + 10 * 365 * 86_400_000;
      await c.store.append([
        at('newest', 0, { ...span(0, 1), t: future + 30 }),
        at('newest', 1, { ...span(0, 1), t: future + 10 }),
        at('newest', 2, { ...span(0, 1), t: future + 20 }),
      ]);
      assert.equal(await c.store.nthNewestTime(1), future + 30);
      assert.equal(await c.store.nthNewestTime(2), future + 20);
      assert.equal(await c.store.nthNewestTime(3), future + 10);
      assert.equal(typeof (await c.store.nthNewestTime(4)), 'number');
      assert.equal(await c.store.nthNewestTime(10_000_000), undefined);
      assert.equal(await c.store.nthNewestTime(0), undefined);
    });

    test('records are durable: a reopened store finds them', async () => {
      const r = span(100, 200, 11);
      await c.store.append([at('durable', 3, r)]);
      if (!(await c.reopen())) return;
      assert.deepEqual(await c.store.find('durable', 3, 150, 10), [r]);
    });
  });
}

/**
 * The ledger's retention (LedgerPruner) on one adapter's store, opened empty for it: old records go,
 * recent ones stay; then at most maxRecords stay, the newest; the metrics count what went.
 */
export function ledgerRetentionCases(name: string, open: () => Promise<LedgerContractSubject>): void {
  contractSuite(`Ledger retention: ${name}`, open, undefined, (c) => {
    const now = Date.UTC(2026, 5, 1);
    const hour = 3_600_000;
    const registry = new Registry();
    const metrics = new LedgerPruneMetrics(registry);
    const counted = async (metric: string) =>
      (await registry.getSingleMetric(metric)?.get())?.values[0]?.value ?? 0;

    c.test('records older than retentionMs go, recent ones stay, and the metrics say so', async () => {
      const old = (i: number) => at('aged', i % 4, { ...span(i, i + 1), t: now - 48 * hour - i });
      const recent = (i: number) => at('aged', i % 4, { ...span(1_000 + i, 1_001 + i), t: now - hour + i });
      await c.store.append([
        ...Array.from({ length: 300 }, (_, i) => old(i)),
        ...Array.from({ length: 20 }, (_, i) => recent(i)),
      ]);
      const pruner = new LedgerPruner(
        c.store,
        { retentionMs: 24 * hour, intervalMs: 60_000 },
        metrics,
        () => {},
      );
      const report = await pruner.run(now);
      assert.equal(report.removed, 300);
      assert.equal(pruner.lastRun, report);
      for (const i of [0, 150, 299])
        assert.deepEqual(await c.store.find('aged', i % 4, i, 10), [], `old ${i}`);
      for (const i of [0, 19])
        assert.equal((await c.store.find('aged', i % 4, 1_000 + i, 10)).length, 1, `recent ${i}`);
      assert.equal(await counted('cds_ledger_pruned_records_total'), 300);
      assert.equal(await counted('cds_ledger_prune_runs_total'), 1);
      assert.equal((await pruner.run(now)).removed, 0, 'nothing more to remove');
    });

    c.test('with maxRecords the newest stay and the oldest beyond them go', async () => {
      const pruner = new LedgerPruner(
        c.store,
        { retentionMs: 0, maxRecords: 5, intervalMs: 60_000 },
        metrics,
        () => {},
      );
      // 20 recent records are left by the case before; 10 newer ones now: the newest 5 of these stay.
      await c.store.append(
        Array.from({ length: 10 }, (_, i) => at('capped', 0, { ...span(i, i + 1), t: now + i })),
      );
      assert.equal((await pruner.run(now)).removed, 25);
      assert.equal(await c.store.nthNewestTime(6), undefined);
      for (let i = 0; i < 10; i++)
        assert.equal((await c.store.find('capped', 0, i, 10)).length, i >= 5 ? 1 : 0, `record ${i}`);
      assert.equal(await counted('cds_ledger_pruned_records_total'), 325);
    });
  });
}
