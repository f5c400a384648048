/**
 * The PostgreSQL LedgerStore passes the port's contract unchanged, against a real server, and the
 * ledger's retention applies to it (a database of its own); two stores on one database (two
 * instances) write into one ledger, so a subscription's records stay whole when its lease moves from
 * one instance to the other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PostgresLedgerStore } from '../../src/adapters/postgres/index.ts';
import { ledgerRetentionCases, ledgerStoreContract } from '../../src/ledger/contract.ts';
import type { CommitRecordAt } from '../../src/ledger/port.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const db = await startPostgres();
const db2 = 'skipped' in db ? db : await startPostgres();
const db3 = 'skipped' in db ? db : await startPostgres();

if ('skipped' in db || 'skipped' in db2 || 'skipped' in db3) {
  it('LedgerStore: postgres', { skip: 'skipped' in db ? db.skipped : 'no server' }, () => {});
} else {
  const server = db as TestPostgres;
  ledgerStoreContract('postgres', async () => ({
    store: await PostgresLedgerStore.open(server.url),
    reopen: () => PostgresLedgerStore.open(server.url),
    cleanup: () => server.stop(),
  }));

  const pruned = db3 as TestPostgres;
  ledgerRetentionCases('postgres', async () => ({
    store: await PostgresLedgerStore.open(pruned.url),
    cleanup: () => pruned.stop(),
  }));

  const shared = db2 as TestPostgres;
  describe('LedgerStore on PostgreSQL: two stores on one database', () => {
    let a: PostgresLedgerStore;
    let b: PostgresLedgerStore;
    before(async () => {
      a = await PostgresLedgerStore.open(shared.url);
      b = await PostgresLedgerStore.open(shared.url);
    });
    after(async () => {
      await a?.close();
      await b?.close();
      await shared.stop();
    });

    it('commits of one subscription written by two instances (a lease that moved) form one ledger', async () => {
      const t0 = Date.now();
      // a dispatched [0, 100) and committed it in two steps; then b took the lease and went on.
      await a.append([
        { subscription: 'moved', partition: 2, record: { t: t0, lo: 0, hi: 50, r: [0, 50], d: [], x: [] } },
      ]);
      await a.append([
        {
          subscription: 'moved',
          partition: 2,
          record: { t: t0 + 200, lo: 50, hi: 100, r: [50, 100], d: [], x: [] },
        },
      ]);
      await b.append([
        {
          subscription: 'moved',
          partition: 2,
          record: { t: t0 + 5000, lo: 100, hi: 160, r: [], d: [100, 160], x: [] },
        },
      ]);
      assert.deepEqual(
        (await b.find('moved', 2, 60, 100)).map((r) => r.t - t0),
        [200],
        'b finds what a recorded',
      );
      assert.deepEqual(
        (await a.find('moved', 2, 120, 100)).map((r) => r.t - t0),
        [5000],
        'a finds what b recorded',
      );
    });

    it('concurrent commits of many records from both stores all land, each append in one statement', async () => {
      const batch = (who: string, n: number): CommitRecordAt[] =>
        Array.from({ length: n }, (_, i) => ({
          subscription: `${who}-${i % 50}`,
          partition: i % 4,
          record: { t: 1_000 + i, lo: i, hi: i + 1, r: [i, i + 1], d: [], x: [[i, 'expired'] as const] },
        }));
      await Promise.all([
        a.append(batch('ca', 1_600)),
        b.append(batch('cb', 1_600)),
        a.append(batch('cc', 1_600)),
        b.append(batch('cd', 1_600)),
      ]);
      for (const who of ['ca', 'cb', 'cc', 'cd'])
        for (const i of [0, 801, 1_599]) {
          const [r] = await a.find(`${who}-${i % 50}`, i % 4, i, 10);
          assert.deepEqual(r, { t: 1_000 + i, lo: i, hi: i + 1, r: [i, i + 1], d: [], x: [[i, 'expired']] });
        }
      assert.equal(await b.prune(1_000 + 1_600), 4 * 1_600);
    });
  });
}
