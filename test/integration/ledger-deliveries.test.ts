/** The delivery ledger and subscription health over REST (DESIGN 5, 10; ADR 0011). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const uniq = (p: string) => `${p}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

describe('ledger: GET /v1/decisions/{id}/deliveries', () => {
  let t: TestApp;
  const names = {
    acker: uniq('acker'),
    holder: uniq('holder'),
    idle: uniq('idle'),
    dead: uniq('dead'),
    other: uniq('other'),
  };
  let decisionId = '';
  let position = '';

  before(async () => {
    t = await startTestApp();
    const pf = uniq('pf');
    const create = async (name: string, extra: Record<string, unknown> = {}) => {
      const r = await t.request('POST', '/v1/subscriptions', {
        body: { name, topics: ['decisions.>'], start: 'latest', ackTimeoutMs: 60_000, ...extra },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    };
    await create(names.acker);
    await create(names.holder);
    await create(names.idle);
    await create(names.dead, {
      ackTimeoutMs: 100,
      maxDeliveries: 1,
      backoff: { initialMs: 0, maxMs: 0, multiplier: 1 },
    });
    await create(names.other, { filter: 'decision.portfolioId == "nobody"' });
    await pause(400); // the ledger watches new subscriptions within 250 ms
    const d = makeDecision(1, { portfolioId: pf, expiresAt: '2099-01-01T00:00:00Z' } as never);
    const r = await t.request('POST', '/v1/decisions', { body: d });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    decisionId = (d as { decisionId: string }).decisionId;
    position = r.body.position;
    const fetch1 = async (name: string) => {
      const f = await t.request('POST', `/v1/subscriptions/${name}/fetch`, {
        body: { max: 1, waitMs: 2000 },
      });
      assert.equal(f.status, 200);
      assert.equal(f.body.deliveries[0]?.position, position, name);
    };
    await fetch1(names.acker);
    await fetch1(names.holder);
    await fetch1(names.dead);
    await pause(300); // past the commit interval: the delivery is committed before the ack
    const a = await t.request('POST', `/v1/subscriptions/${names.acker}/ack`, {
      body: { positions: [position] },
    });
    assert.equal(a.body.results[0].ok, true);
    // the dead subscription's lease expires (100 ms) and, with maxDeliveries 1, it is dead-lettered
    const end = Date.now() + 3000;
    while (Date.now() < end) {
      const s = await t.request('GET', `/v1/subscriptions/${names.dead}/stats`);
      if (s.body.deadLetters === 1) break;
      await pause(50);
    }
  });
  after(async () => t?.close());

  it('answers per subscription: acked, delivered, pending, dead-lettered; filtered ones only with explain', async () => {
    const r = await t.request('GET', `/v1/decisions/${decisionId}/deliveries?explain=true`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.position, position);
    assert.equal(r.body.granularity.times, 'cursor-commit');
    const by = new Map<string, any>(r.body.deliveries.map((l: any) => [l.subscription, l]));
    const acked = by.get(names.acker);
    assert.equal(acked?.state, 'acked', JSON.stringify(acked));
    assert.ok(acked.deliveredAt && acked.ackedAt, JSON.stringify(acked));
    assert.ok(Date.parse(acked.deliveredAt) < Date.parse(acked.ackedAt), JSON.stringify(acked));
    assert.ok(acked.ackLatencyMs >= acked.deliveryLatencyMs);
    assert.equal(by.get(names.holder)?.state, 'delivered');
    assert.equal(by.get(names.holder)?.deliveryCount, 1);
    assert.equal(by.get(names.idle)?.state, 'pending');
    assert.equal(by.get(names.idle)?.deliveryCount, 0);
    assert.equal(by.get(names.dead)?.state, 'dead-lettered');
    assert.equal(by.get(names.dead)?.reason, 'max_deliveries');
    assert.equal(by.has(names.other), false);
    const other = r.body.filtered.find((f: any) => f.subscription === names.other);
    assert.equal(other?.reason, 'term_not_matched', JSON.stringify(r.body.filtered));
    assert.equal(other?.field, 'portfolioId');
    const plain = await t.request('GET', `/v1/decisions/${decisionId}/deliveries`);
    assert.equal(plain.body.filtered, undefined);
    assert.equal((await t.request('GET', `/v1/decisions/${decisionId}/deliveries?revision=7`)).status, 404);
    assert.equal((await t.request('GET', `/v1/decisions/${decisionId}/deliveries?x=1`)).status, 400);
  });

  it('shows health per subscription in stats, /v1/status and /metrics', async () => {
    const s = await t.request('GET', `/v1/subscriptions/${names.holder}/stats`);
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.equal(s.body.inFlight, 1);
    assert.equal(s.body.lag.pending, 1);
    assert.equal(s.body.lag.oldestUnackedPosition, position);
    assert.ok(s.body.lag.oldestUnackedAgeMs >= 0);
    assert.equal(s.body.consumers[0]?.kind, 'pull');
    const a = await t.request('GET', `/v1/subscriptions/${names.acker}/stats`);
    assert.ok(a.body.lastAckAt);
    assert.equal(a.body.lag.records, 0);
    assert.equal(a.body.totals.acked, 1);
    const st = await t.request('GET', '/v1/status');
    assert.equal(st.body.subscriptions.count, 5);
    const m = await t.request('GET', '/metrics', { key: null });
    assert.match(
      String(m.body),
      new RegExp(`cds_subscription_in_flight\\{subscription="${names.holder}"\\} 1`),
    );
    assert.match(
      String(m.body),
      new RegExp(`cds_subscription_dead_letters_total\\{subscription="${names.dead}"\\} 1`),
    );
    assert.match(
      String(m.body),
      new RegExp(`cds_subscription_acked_total\\{subscription="${names.acker}"\\} 1`),
    );
    assert.equal((await t.request('GET', '/v1/subscriptions/nope/stats')).status, 404);
  });
});
