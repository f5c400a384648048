/**
 * The WebSocket transport and its client (DESIGN 5; ADR 0009): gap detection with handovers, bad
 * input answered per message, live updates, resume after a reconnect.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Subscriber, type SubscriberEvent } from '../../src/client/index.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import { createSub, dec, deliveriesN, nextEvent, publish, status, uniq, waitFor } from '../model/harness.ts';

describe('WebSocket client and transport', () => {
  let t: TestApp;
  let url: string;
  const subs: Subscriber[] = [];
  const open = (subscription: string, credits: number) => {
    const s = new Subscriber({ url, apiKey: ADMIN_KEY, subscription, credits });
    subs.push(s);
    return s;
  };
  before(async () => {
    t = await startTestApp();
    url = (await t.app.listen()).http;
  });
  after(async () => {
    for (const s of subs) s.close();
    await t?.close();
  });

  it('a key moving between consumers is a handover, not a gap; a dropped frame is a gap naming key and positions', async () => {
    const name = await createSub(t, {});
    const a = open(name, 1);
    const b = open(name, 0);
    await nextEvent(a, 'connected');
    await nextEvent(b, 'connected');
    const k = uniq('pf');
    const pos = await publish(
      t,
      [1, 2, 3, 4, 5].map((i) => dec(100 + i, { portfolioId: k })),
    );
    const seenA: SubscriberEvent[] = [];
    const seenB: SubscriberEvent[] = [];
    const [d1] = await deliveriesN(a, 1, 10_000, seenA); // only A has a credit
    assert.equal(d1?.position, pos[0]);
    assert.equal(d1?.handover, true);
    await a.ack([pos[0] as string], { credit: false });
    b.credit(1); // the key is idle at A and A has no room: it moves to B
    const [d2] = await deliveriesN(b, 1, 10_000, seenB);
    assert.equal(d2?.position, pos[1]);
    assert.equal(d2?.prevPosition, pos[0]);
    assert.equal(d2?.handover, true);
    await b.ack([pos[1] as string], { credit: false });
    a.credit(1); // and back to A, whose own chain ended at pos[0]
    const [d3] = await deliveriesN(a, 1, 10_000, seenA);
    assert.equal(d3?.position, pos[2]);
    assert.equal(d3?.prevPosition, pos[1]);
    assert.equal(d3?.handover, true);
    await a.ack([pos[2] as string], { credit: false });
    a.dropNextFrames = 1; // the frame of pos[3] is lost at the client
    a.credit(1);
    await waitFor(async () => (await status(t, name)).counters.delivered >= 4, 'the fourth delivery');
    a.credit(1);
    const [d5] = await deliveriesN(a, 1, 10_000, seenA);
    assert.equal(d5?.position, pos[4]);
    assert.equal(d5?.handover, undefined);
    const gaps = seenA.filter((e) => e.type === 'gap');
    assert.equal(gaps.length, 1, JSON.stringify(seenA));
    const g = gaps[0] as Extract<SubscriberEvent, { type: 'gap' }>;
    assert.equal(g.key, k);
    assert.equal(g.expected, pos[3]);
    assert.equal(g.last, pos[2]);
    assert.equal(g.got.position, pos[4]);
    assert.deepEqual(
      seenB.filter((e) => e.type === 'gap'),
      [],
    );
  });

  it('bad input gets an error frame for that message alone; the connection and other subscribers go on', async () => {
    const name = await createSub(t, {});
    const bad = open(name, 10);
    const good = open(name, 10);
    await nextEvent(bad, 'connected');
    await nextEvent(good, 'connected');
    const errors: string[] = [];
    const expectError = async (raw: unknown) => {
      bad.sendRaw(raw);
      const e = await nextEvent(bad, 'error');
      errors.push(e.error.code);
    };
    await expectError('{not json');
    await expectError({ op: 'dance' });
    await expectError(JSON.stringify({ op: 'ping', pad: 'x'.repeat(1_100_000) }));
    await expectError({ op: 'credits', n: -5 });
    await expectError({ op: 'ack', positions: 'nope' });
    assert.deepEqual(errors, [
      'MALFORMED_JSON',
      'VALIDATION_FAILED',
      'PAYLOAD_TOO_LARGE',
      'VALIDATION_FAILED',
      'VALIDATION_FAILED',
    ]);
    const res = await bad.ack(['0:999999999', 'garbage']);
    assert.deepEqual(
      res.map((r) => [r.ok, r.code]),
      [
        [false, 'UNKNOWN_DELIVERY'],
        [false, 'INVALID_POSITION'],
      ],
    );
    // Both connections still deliver.
    const k = uniq('pf');
    const pos = await publish(
      t,
      Array.from({ length: 20 }, (_, i) => dec(200 + i, { portfolioId: `${k}-${i}` })),
    );
    const got = new Set<string>();
    const from = new Set<Subscriber>();
    await waitFor(async () => {
      for (const s of [bad, good]) {
        const e = await s.next(50);
        if (e?.type === 'deliveries') {
          for (const d of e.deliveries) got.add(d.position);
          from.add(s);
          await s.ack(e.deliveries.map((d) => d.position));
        }
      }
      return got.size === pos.length;
    }, 'every delivery');
    assert.equal(from.size, 2, 'both consumers received deliveries');
  });

  it('a live update over WebSocket applies without reconnecting', async () => {
    const name = await createSub(t, {});
    const s = open(name, 10);
    await nextEvent(s, 'connected');
    const k = uniq('pf');
    const r = await s.update({ filter: 'decision.priority >= 7' });
    assert.deepEqual(r, { ok: true, version: 2 });
    const bad = await s.update({ filter: 'decision.priority >' });
    assert.equal(bad.ok, false);
    assert.equal(bad.ok === false && bad.code, 'VALIDATION_FAILED');
    const pos = await publish(t, [
      dec(300, { portfolioId: k, priority: 2 }),
      dec(301, { portfolioId: k, priority: 9 }),
    ]);
    const skipped: SubscriberEvent[] = [];
    const ds = await deliveriesN(s, 1, 10_000, skipped);
    assert.deepEqual(
      ds.map((d) => d.position),
      [pos[1]],
    );
    assert.ok(!skipped.some((e) => e.type === 'disconnected' || e.type === 'connected'));
  });

  it('resumes after a reconnect from the last acks: nothing lost, only unacknowledged ones again', async () => {
    const name = await createSub(t, { ackTimeoutMs: 60_000 });
    const s = open(name, 100);
    await nextEvent(s, 'connected');
    const k = uniq('pf');
    const pos = await publish(
      t,
      [0, 1, 2, 3, 4].map((i) => dec(400 + i, { portfolioId: k })),
    );
    const first = await deliveriesN(s, 5);
    assert.deepEqual(
      first.map((d) => d.position),
      pos,
    );
    await s.ack(pos.slice(0, 3));
    s.dropConnection();
    await nextEvent(s, 'disconnected');
    await nextEvent(s, 'connected');
    const more = await publish(t, [dec(405, { portfolioId: k })]);
    const again = await deliveriesN(s, 3);
    assert.deepEqual(
      again.map((d) => [d.position, d.deliveryCount]),
      [
        [pos[3], 2],
        [pos[4], 2],
        [more[0], 1],
      ],
    );
    assert.equal(again[0]?.handover, undefined, 'a redelivery never opens a chain');
    assert.equal(again[2]?.prevPosition, pos[4]);
    assert.equal(again[2]?.handover, true, 'the new connection is another consumer: a handover');
  });
});
