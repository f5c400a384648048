/** A routing rule's hold or delay is honoured by delivery: the decision, and its key behind it, wait until the time. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

describe('hold and delay actions at delivery', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp();
  });
  after(async () => t?.close());

  const fetch = async (name: string) => {
    const r = await t.request('POST', `/v1/subscriptions/${name}/fetch`, { body: { max: 100, waitMs: 200 } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.deliveries as { position: string; key: string; decision: { decisionId: string } }[];
  };

  it('delivers a delayed decision only after its delay, keeps its key behind it, lets other keys flow', async () => {
    const DELAY = 1500;
    const rs = await t.request('POST', '/v1/routes', {
      body: {
        rules: [
          { id: 'slow-pf', condition: 'decision.portfolioId == "pf-held"', actions: { delayMs: DELAY } },
        ],
      },
    });
    assert.equal(rs.status, 201, JSON.stringify(rs.body));
    const sub = await t.request('POST', '/v1/subscriptions', {
      body: { name: 'hold-sub', topics: ['decisions.>'] },
    });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    const far = { expiresAt: '2099-01-01T00:00:00Z' };
    const published = Date.now();
    const held = makeDecision(1, { portfolioId: 'pf-held', ...far });
    const free = makeDecision(2, { portfolioId: 'pf-free', ...far });
    assert.equal((await t.request('POST', '/v1/decisions', { body: [held, free] })).status, 200);
    // A decision of the held key published after the rule is changed is not held itself, but waits behind.
    const off = await t.request('POST', '/v1/routes', { body: { rules: [] } });
    assert.equal(off.status, 201);
    const behind = makeDecision(3, { portfolioId: 'pf-held', ...far });
    assert.equal((await t.request('POST', '/v1/decisions', { body: behind })).status, 200);

    const first = await fetch('hold-sub');
    assert.deepEqual(
      first.map((d) => d.decision.decisionId),
      ['dec-000002'],
      'only the other key flows at once',
    );
    await t.request('POST', '/v1/subscriptions/hold-sub/ack', {
      body: { positions: first.map((d) => d.position) },
    });
    const got: string[] = [];
    while (got.length < 2 && Date.now() - published < 20_000) {
      for (const d of await fetch('hold-sub')) got.push(d.decision.decisionId);
    }
    assert.ok(Date.now() - published >= DELAY, 'not before the delay');
    assert.deepEqual(got, ['dec-000001', 'dec-000003'], 'the held decision first, then its key');
  });
});
