/**
 * The ledger's retention in a running service (ADR 0011): with `ledger.retentionMs` and
 * `ledger.intervalMs` set, the timer removes a commit's records once they are older, the ledger
 * answer loses their times (the state, from the live window, stays), and the metrics count the run.
 * The store-level cases (old records go, recent stay, maxRecords) run on LMDB and PostgreSQL in
 * src/ledger/contract.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The value of an unlabelled metric in the exposition text, or undefined. */
function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

describe('ledger retention applied on its timer', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp({ ledger: { retentionMs: 4_000, intervalMs: 1_000 } });
  });
  after(async () => t?.close());

  it('records older than ledger.retentionMs go: the answer keeps the state and loses the times', async () => {
    const name = `acker-${process.pid}`;
    const created = await t.request('POST', '/v1/subscriptions', {
      body: { name, topics: ['decisions.>'], start: 'latest', ackTimeoutMs: 60_000 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await pause(400); // the ledger watches new subscriptions within 250 ms
    const d = makeDecision(1) as { decisionId: string };
    const pub = await t.request('POST', '/v1/decisions', { body: d });
    assert.equal(pub.status, 200, JSON.stringify(pub.body));
    const f = await t.request('POST', `/v1/subscriptions/${name}/fetch`, { body: { max: 1, waitMs: 2000 } });
    assert.equal(f.body.deliveries[0]?.position, pub.body.position);
    await pause(300); // past the commit interval: the delivery is committed before the ack
    const a = await t.request('POST', `/v1/subscriptions/${name}/ack`, {
      body: { positions: [pub.body.position] },
    });
    assert.equal(a.body.results[0].ok, true);
    const line = async () => {
      const r = await t.request('GET', `/v1/decisions/${d.decisionId}/deliveries`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.deliveries.find((l: { subscription: string }) => l.subscription === name);
    };
    const recorded = await line();
    assert.equal(recorded?.state, 'acked', JSON.stringify(recorded));
    assert.ok(recorded.ackedAt !== null && recorded.deliveredAt !== null, JSON.stringify(recorded));

    let pruned: number | undefined;
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      const m = String((await t.request('GET', '/metrics', { key: null })).body);
      pruned = metric(m, 'cds_ledger_pruned_records_total');
      if ((pruned ?? 0) > 0) {
        assert.ok((metric(m, 'cds_ledger_prune_runs_total') ?? 0) >= 1);
        assert.ok(metric(m, 'cds_ledger_prune_last_run_seconds') !== undefined);
        break;
      }
      await pause(250);
    }
    assert.ok((pruned ?? 0) > 0, 'the timer removed the records');
    const after = await line();
    assert.deepEqual(
      { state: after?.state, deliveredAt: after?.deliveredAt, ackedAt: after?.ackedAt },
      { state: 'acked', deliveredAt: null, ackedAt: null },
    );
  });
});
