/** Priority lanes (DESIGN 5): higher priority goes first across keys, never within a key; nothing under per-partition order. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

describe('priority lanes', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp();
  });
  after(async () => t?.close());

  /** Publishes A1, A1', A9 (key pf-a), B9 (pf-b), C5 (pf-c) in that order, then takes them one at a time. */
  const run = async (name: string, ordering: string, base: number): Promise<string[]> => {
    const sub = await t.request('POST', '/v1/subscriptions', {
      body: { name, topics: ['decisions.>'], ordering },
    });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    const far = { expiresAt: '2099-01-01T00:00:00Z' };
    const ds = [
      makeDecision(base + 1, { portfolioId: 'pf-a', priority: 1, ...far }),
      makeDecision(base + 2, { portfolioId: 'pf-a', priority: 1, ...far }),
      makeDecision(base + 3, { portfolioId: 'pf-a', priority: 9, ...far }),
      makeDecision(base + 4, { portfolioId: 'pf-b', priority: 9, ...far }),
      makeDecision(base + 5, { portfolioId: 'pf-c', priority: 5, ...far }),
    ];
    assert.equal((await t.request('POST', '/v1/decisions', { body: ds })).status, 200);
    const got: string[] = [];
    const until = Date.now() + 20_000;
    while (got.length < ds.length && Date.now() < until) {
      const r = await t.request('POST', `/v1/subscriptions/${name}/fetch`, { body: { max: 1, waitMs: 500 } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      for (const d of r.body.deliveries) {
        got.push(`${d.key.slice(3)}${d.decision.priority}`);
        await t.request('POST', `/v1/subscriptions/${name}/ack`, { body: { positions: [d.position] } });
      }
    }
    return got;
  };

  it('per key: the most urgent head goes first across keys; a key keeps its own order', async () => {
    assert.deepEqual(await run('prio-key', 'key', 100), ['b9', 'c5', 'a1', 'a1', 'a9']);
  });

  it('per partition: priority changes nothing (log order)', async () => {
    assert.deepEqual(await run('prio-partition', 'partition', 200), ['a1', 'a1', 'a9', 'b9', 'c5']);
  });

  it('no ordering: priority alone orders the waiting decisions', async () => {
    const got = await run('prio-none', 'none', 300);
    assert.deepEqual(got.slice(0, 2).sort(), ['a9', 'b9']);
    assert.deepEqual(got.slice(2), ['c5', 'a1', 'a1']);
  });
});
