/** Graceful shutdown (DESIGN 5): readiness false, new work refused with a retriable code, in-flight publishes completed. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { startTestApp } from '../helpers/app.ts';

describe('graceful shutdown', () => {
  it('finishes in-flight publishes, refuses new ones with 503 SHUTTING_DOWN, and loses nothing acknowledged', async () => {
    let t = await startTestApp();
    const dir = t.dataDir;
    const acked: string[] = [];
    const refused: { status: number; code: string; retriable: boolean; retryAfter: unknown }[] = [];
    let i = 0;
    const publisher = async () => {
      for (;;) {
        const batch = Array.from({ length: 20 }, () => makeDecision(10_000 + i++));
        const r = await t.request('POST', '/v1/decisions', { body: batch });
        if (r.status === 200) acked.push(...batch.map((d) => d.decisionId));
        else {
          refused.push({
            status: r.status,
            code: r.body.error.code,
            retriable: r.body.error.retriable,
            retryAfter: r.headers['retry-after'],
          });
          return;
        }
      }
    };
    const running = Array.from({ length: 8 }, publisher);
    await new Promise((r) => setTimeout(r, 300));
    const closing = t.app.close();
    assert.equal(t.app.ctx.lifecycle.ready, false);
    const ready = await t.request('GET', '/readyz');
    assert.equal(ready.status, 503);
    await Promise.all(running);
    await closing;
    assert.ok(acked.length > 0);
    assert.equal(refused.length, 8);
    for (const r of refused)
      assert.deepEqual([r.status, r.code, r.retriable, r.retryAfter], [503, 'SHUTTING_DOWN', true, '1']);
    t = await startTestApp({}, dir);
    try {
      for (const id of acked) assert.equal((await t.request('GET', `/v1/decisions/${id}`)).status, 200, id);
    } finally {
      await t.close();
    }
  });
});
