/**
 * Delivery policies over REST pull (DESIGN 5; ADR 0009): block loses nothing, the disconnect policy,
 * seek by position and by time, drain, JSONata transforms, and the kill switch past a poisoned key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Subscriber } from '../../src/client/index.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import {
  ackPull,
  createSub,
  dec,
  fetchN,
  fetchOnce,
  nextEvent,
  publish,
  status,
  uniq,
  waitFor,
} from '../model/harness.ts';

describe('delivery policies', () => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await startTestApp();
    url = (await t.app.listen()).http;
  });
  after(async () => t?.close());

  it('block: a slow consumer with a full window loses nothing', async () => {
    const name = await createSub(t, { windowSize: 16 });
    const N = 150;
    const pos: string[] = [];
    for (let i = 0; i < N; i += 50)
      pos.push(
        ...(await publish(
          t,
          Array.from({ length: 50 }, (_, j) => dec(1000 + i + j, { portfolioId: `pf-blk-${(i + j) % 7}` })),
        )),
      );
    const got: string[] = [];
    let sawBehind = false;
    await waitFor(async () => {
      const ds = await fetchOnce(t, name, 5, 100);
      if (ds.length > 0)
        await ackPull(
          t,
          name,
          ds.map((d) => d.position),
        );
      got.push(...ds.map((d) => d.position));
      const st = await status(t, name);
      if (st.pending <= 16 && st.lag > 16) sawBehind = true;
      return got.length >= N;
    }, 'every decision');
    assert.deepEqual([...got].sort(), [...pos].sort());
    assert.ok(sawBehind, 'the window bounded what was read');
    assert.equal((await status(t, name)).pending, 0);
  });

  it('disconnect: consumers are closed with SLOW_CONSUMER past the lag limit; the cursor stays', async () => {
    const name = await createSub(t, { slowConsumer: { policy: 'disconnect', lagLimit: 5, graceMs: 0 } });
    const s = new Subscriber({ url, apiKey: ADMIN_KEY, subscription: name, credits: 0, reconnect: false });
    try {
      await nextEvent(s, 'connected');
      const pos = await publish(
        t,
        Array.from({ length: 10 }, (_, i) => dec(1200 + i, { portfolioId: uniq('pf') })),
      );
      const d = await nextEvent(s, 'disconnected');
      assert.equal(d.code, 4005);
      assert.ok((await status(t, name)).lag >= pos.length);
    } finally {
      s.close();
    }
  });

  it('seek to a position and to a time delivers again from there', async () => {
    const name = await createSub(t, {});
    const k = uniq('pf');
    const pos = await publish(
      t,
      [0, 1, 2, 3].map((i) => dec(1300 + i, { portfolioId: k })),
    );
    const first = await fetchN(t, name, 4);
    await ackPull(
      t,
      name,
      first.map((d) => d.position),
    );
    const r = await t.request('POST', `/v1/subscriptions/${name}/seek`, { body: { position: pos[2] } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const again = await fetchN(t, name, 2);
    assert.deepEqual(
      again.map((d) => d.position),
      pos.slice(2),
    );
    await ackPull(
      t,
      name,
      again.map((d) => d.position),
    );
    await new Promise((res) => setTimeout(res, 5)); // the log's clock moves past `at`
    const at = new Date().toISOString();
    await new Promise((res) => setTimeout(res, 5));
    const later = await publish(t, [dec(1310, { portfolioId: k }), dec(1311, { portfolioId: k })]);
    await ackPull(
      t,
      name,
      (await fetchN(t, name, 2)).map((d) => d.position),
    );
    const r2 = await t.request('POST', `/v1/subscriptions/${name}/seek`, { body: { time: at } });
    assert.equal(r2.status, 200, JSON.stringify(r2.body));
    const fromTime = await fetchN(t, name, 2);
    assert.deepEqual(
      fromTime.map((d) => d.position),
      later,
    );
  });

  it('drain: what was taken is delivered, nothing new is read, drained when all is acked', async () => {
    const name = await createSub(t, {});
    const k = uniq('pf');
    const pos = await publish(t, [dec(1400, { portfolioId: k }), dec(1401, { portfolioId: k })]);
    await waitFor(async () => (await status(t, name)).pending === 2, 'both taken');
    assert.equal((await t.request('POST', `/v1/subscriptions/${name}/drain`)).body.state, 'draining');
    await publish(t, [dec(1402, { portfolioId: k })]);
    const ds = await fetchN(t, name, 2);
    assert.deepEqual(
      ds.map((d) => d.position),
      pos,
    );
    assert.equal((await status(t, name)).drained, false);
    await ackPull(t, name, pos);
    assert.equal((await status(t, name)).drained, true);
    assert.deepEqual(await fetchOnce(t, name, 10, 300), []);
  });

  it('a JSONata transform shapes the output; a failing one dead-letters that decision alone, counted', async () => {
    const name = await createSub(t, {
      transform: 'quantity = "13" ? $error("no thirteen") : {"id": decisionId, "q": $number(quantity)}',
    });
    const k = uniq('pf');
    const pos = await publish(t, [
      dec(1500, { portfolioId: k, quantity: '12' }),
      dec(1501, { portfolioId: k, quantity: '13' }),
      dec(1502, { portfolioId: k, quantity: '14' }),
    ]);
    const ds = await fetchN(t, name, 2);
    assert.deepEqual(
      ds.map((d) => [d.position, d.decision]),
      [
        [pos[0], { id: 'dec-001500', q: 12 }],
        [pos[2], { id: 'dec-001502', q: 14 }],
      ],
    );
    const st = await status(t, name);
    assert.equal(st.counters.transformFailures, 1);
    assert.equal(st.counters.deadLettered, 1);
    const dl = await t.request('GET', `/v1/subscriptions/${name}/dead-letters`);
    assert.deepEqual(
      dl.body.deadLetters.map((l: { reason: string; offset: number }) => l.reason),
      ['transform_failed'],
    );
  });

  it('the kill switch overtakes a held (poisoned) entry of its key', async () => {
    const name = await createSub(t, {
      ackTimeoutMs: 100,
      maxDeliveries: 1,
      deadLetter: false,
      backoff: { initialMs: 0, maxMs: 0, multiplier: 1 },
    });
    const k = uniq('pf');
    const [poison] = await publish(t, [dec(1600, { portfolioId: k })]);
    assert.equal((await fetchN(t, name, 1))[0]?.position, poison);
    // A halt that waits while the poison is out: the poison is held behind it when its lease ends.
    const [halt1] = await publish(t, [dec(1601, { portfolioId: k, type: 'halt' })]);
    await waitFor(async () => (await status(t, name)).held === 1, 'the poison held');
    const [trade, halt2] = await publish(t, [
      dec(1602, { portfolioId: k }),
      dec(1603, { portfolioId: k, type: 'halt' }), // arrives while the key is held
    ]);
    const ds = await fetchN(t, name, 3, 1500);
    assert.deepEqual(
      ds.map((d) => [d.position, d.expedited]),
      [
        [halt1, true],
        [halt2, true],
      ],
      'both halts, not the trade behind the poison',
    );
    await ackPull(t, name, [halt1, halt2]);
    assert.deepEqual(await fetchOnce(t, name, 10, 200), [], 'the key still waits for the operator');
    const sk = await t.request('POST', `/v1/subscriptions/${name}/skip`, { body: { position: poison } });
    assert.equal(sk.status, 200);
    assert.deepEqual(
      (await fetchN(t, name, 1)).map((d) => d.position),
      [trade],
    );
  });
});
