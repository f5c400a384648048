/**
 * 200 concurrent WebSocket subscribers, each with its own filter, and 50,000 decisions: each receives
 * exactly the set that an independent evaluation of its filter selects, in per-key order, nothing lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Subscriber } from '../../src/client/index.ts';
import type { Decision } from '../../src/domain/decision.ts';
import { createDecisionGenerator, testSeed } from '../helpers/decisions.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';

const SUBSCRIBERS = 200;
const DECISIONS = 50_000;
const PORTFOLIOS = 360;

interface Sub {
  name: string;
  filter: string;
  /** The independent evaluation of the filter. */
  pred: (d: Decision) => boolean;
}

/** 180 subscriptions on slices of two portfolios, 20 on an asset class or a priority. */
function subscriptions(): Sub[] {
  const subs: Sub[] = [];
  for (let i = 0; i < 180; i++) {
    const a = `pf-${2 * i}`;
    const b = `pf-${2 * i + 1}`;
    subs.push({
      name: `fan-pf-${i}`,
      filter: `decision.portfolioId in ['${a}', '${b}']`,
      pred: (d) => d.portfolioId === a || d.portfolioId === b,
    });
  }
  const classes = ['equity', 'fx', 'future', 'option', 'crypto'] as const;
  for (let i = 0; i < 10; i++) {
    const c = classes[i % classes.length] as string;
    subs.push({
      name: `fan-ac-${i}`,
      filter: `decision.instrument.assetClass == '${c}'`,
      pred: (d) => d.instrument.assetClass === c,
    });
  }
  for (let i = 0; i < 10; i++) {
    const p = 5 + (i % 5);
    subs.push({ name: `fan-prio-${i}`, filter: `decision.priority >= ${p}`, pred: (d) => d.priority >= p });
  }
  return subs;
}

describe('fan-out to 200 WebSocket subscribers', { timeout: 600_000 }, () => {
  let t: TestApp;
  let url: string;
  const clients: Subscriber[] = [];
  before(async () => {
    t = await startTestApp();
    url = (await t.app.listen()).http;
  });
  after(async () => {
    for (const c of clients) c.close();
    await t?.close();
  });

  it(`each of ${SUBSCRIBERS} subscribers gets exactly its filter's ${DECISIONS.toLocaleString('en')}-decision slice, in per-key order`, async () => {
    const seed = testSeed('delivery-fanout');
    const subs = subscriptions();
    assert.equal(subs.length, SUBSCRIBERS);
    for (const s of subs) {
      const r = await t.request('POST', '/v1/subscriptions', {
        body: { name: s.name, topics: ['decisions.>'], filter: s.filter, ackTimeoutMs: 120_000 },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const decisions = createDecisionGenerator({ seed, portfolios: PORTFOLIOS, idPrefix: 'fan' }).take(
      DECISIONS,
    );
    // Far-future expiry: the run must not depend on the clock.
    for (const d of decisions) d.expiresAt = '2099-01-01T00:00:00Z';
    const expected = subs.map((s) => new Set(decisions.filter(s.pred).map((d) => d.decisionId)));
    const received = subs.map(() => new Map<string, string>()); // decisionId -> position (first delivery)
    const order = subs.map(() => new Map<string, number[]>()); // key -> first-delivery offsets
    let total = 0;
    let gaps = 0;
    const want = expected.reduce((n, e) => n + e.size, 0);
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const consume = async (i: number, c: Subscriber) => {
      for (;;) {
        const e = await c.next(60_000);
        if (e === undefined) return;
        if (e.type === 'gap') gaps++;
        if (e.type !== 'deliveries') continue;
        for (const d of e.deliveries) {
          const id = (d.decision as Decision).decisionId;
          if (received[i]!.has(id)) continue; // a redelivery (at-least-once)
          received[i]!.set(id, d.position);
          // Halts and cancels are expedited past their key's waiting decisions (DESIGN 5): the order
          // check covers the others.
          if (d.expedited !== true) {
            const l = order[i]!.get(d.key) ?? [];
            l.push(Number(d.position.split(':')[1]));
            order[i]!.set(d.key, l);
          }
          if (++total === want) done();
        }
        await c.ack(e.deliveries.map((d) => d.position));
      }
    };
    subs.forEach((s, i) => {
      const c = new Subscriber({ url, apiKey: ADMIN_KEY, subscription: s.name, credits: 500 });
      clients.push(c);
      void consume(i, c);
    });
    for (let i = 0; i < decisions.length; i += 1000) {
      const r = await t.request('POST', '/v1/decisions', { body: decisions.slice(i, i + 1000) });
      assert.equal(r.status, 200);
    }
    const timeout = setTimeout(() => done(), 480_000);
    await finished;
    clearTimeout(timeout);
    subs.forEach((s, i) => {
      const got = new Set(received[i]!.keys());
      const missing = [...expected[i]!].filter((id) => !got.has(id));
      const extra = [...got].filter((id) => !expected[i]!.has(id));
      assert.deepEqual(
        [missing.length, extra.length],
        [0, 0],
        `${s.name}: missing ${missing.slice(0, 3)} extra ${extra.slice(0, 3)} (seed ${seed})`,
      );
      for (const [key, offsets] of order[i]!) {
        assert.deepEqual(
          offsets,
          [...offsets].sort((a, b) => a - b),
          `${s.name}: key ${key} out of order (seed ${seed})`,
        );
      }
    });
    assert.equal(total, want);
    assert.equal(gaps, 0, 'no subscriber detected a gap');
  });
});
