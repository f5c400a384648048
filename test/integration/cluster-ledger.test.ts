/**
 * The ledger in cluster mode (ADR 0011, 0015): two instances on one PostgreSQL database and one shared
 * log (test/helpers/cluster.ts), each dispatching half of the subscriptions. The ledger of a decision
 * lists every subscription on both instances, with the same states: the other instance's
 * subscriptions from the shared store (definitions, committed cursors, dead letters, commit records).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { SegmentLog } from '../../src/adapters/embedded/log/index.ts';
import type { Subscriber } from '../../src/client/index.ts';
import {
  consumerGroups,
  createSpread,
  missing,
  request,
  shared,
  startInstance,
  type Instance,
  within,
} from '../helpers/cluster.ts';
import { makeDecision } from '../helpers/decisions.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const started = await startPostgres();

if ('skipped' in started) {
  it('the ledger across instances', { skip: started.skipped }, () => {});
} else {
  const db = started as TestPostgres;
  describe('the ledger across two instances', () => {
    const names = ['led-a', 'led-b', 'led-c', 'led-d'];
    let log: SegmentLog;
    let logDir: string;
    let a: Instance;
    let b: Instance;
    let subs: Subscriber[] = [];

    before(async () => {
      logDir = mkdtempSync(join(tmpdir(), 'cds-shared-log-'));
      log = await SegmentLog.open(logDir);
      a = await startInstance(db.url, shared(log), { leaseMs: 3000, renewMs: 500 });
      b = await startInstance(db.url, shared(log), { leaseMs: 3000, renewMs: 500 });
    });
    after(async () => {
      for (const s of subs) await s.close();
      await a?.app.close();
      await b?.app.close();
      await log?.close();
      for (const d of [a?.dataDir, b?.dataDir, logDir]) if (d) rmSync(d, { recursive: true, force: true });
      await db.stop();
    });

    it('lists every subscription of both instances, with the same states on each', async () => {
      await createSpread(db.url, a, names);
      // The ledger recorder watches a subscription within 250 ms of its start (ADR 0011): before that
      // its resolutions have no times.
      await sleep(1000);
      // Every subscription but led-d has consumers that ack; led-d keeps the decision pending.
      const consumed = names.slice(0, 3);
      const groups = consumerGroups(consumed, [a.url, b.url]);
      subs = groups.subs;
      const d = makeDecision(1, { decisionId: 'ledger-across', expiresAt: undefined });
      const pub = await request(a, 'POST', '/v1/decisions', d);
      assert.equal(pub.status, 200, JSON.stringify(pub.body));
      await within(10_000, 'every consumer group received it', () =>
        missing(groups.receipts, [d.decisionId]).every((n) => n === 0),
      );
      const states = async (i: Instance) => {
        const r = await request(i, 'GET', `/v1/decisions/${d.decisionId}/deliveries`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return new Map<string, any>(r.body.deliveries.map((l: any) => [l.subscription, l]));
      };
      // The acks are committed by each owner within a commit interval; both instances then agree.
      await within(10_000, 'the acks are in the ledger of both instances', async () => {
        for (const i of [a, b]) {
          const s = await states(i);
          if (!consumed.every((n) => s.get(n)?.state === 'acked')) return false;
        }
        return true;
      });
      for (const i of [a, b]) {
        const s = await states(i);
        assert.deepEqual([...s.keys()], names, `the ledger on ${i.url} lists every subscription`);
        for (const n of consumed)
          assert.ok(s.get(n).ackedAt !== null, `${n} on ${i.url}: ${JSON.stringify(s.get(n))}`);
        assert.equal(s.get('led-d').state, 'pending', JSON.stringify(s.get('led-d')));
      }
      const [fromA, fromB] = [await states(a), await states(b)];
      assert.deepEqual(fromA, fromB);
    });
  });
}
