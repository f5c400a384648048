/** Subscriptions over REST and REST pull against the real embedded log and store (DESIGN 5; ADR 0009). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

const FUTURE = '2099-01-01T00:00:00Z';
let seq = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++seq}`;

async function publish(t: TestApp, ds: unknown[]): Promise<string[]> {
  const r = await t.request('POST', '/v1/decisions', { body: ds });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.results as { position: string }[]).map((x) => x.position);
}

function dec(i: number, o: Record<string, unknown> = {}) {
  return makeDecision(i, { expiresAt: FUTURE, ...o } as never);
}

async function create(t: TestApp, body: Record<string, unknown>): Promise<string> {
  const name = uniq('sub');
  const r = await t.request('POST', '/v1/subscriptions', {
    body: { name, topics: ['decisions.>'], start: 'latest', ...body },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return name;
}

async function fetchAll(t: TestApp, name: string, max = 100, waitMs = 1000): Promise<any[]> {
  const r = await t.request('POST', `/v1/subscriptions/${name}/fetch`, { body: { max, waitMs } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.deliveries;
}

/** Fetches until `n` deliveries came or the time is up. */
async function fetchN(t: TestApp, name: string, n: number, ms = 5000): Promise<any[]> {
  const out: any[] = [];
  const end = Date.now() + ms;
  while (out.length < n && Date.now() < end) out.push(...(await fetchAll(t, name, n - out.length, 200)));
  return out;
}

async function ack(t: TestApp, name: string, positions: unknown[]) {
  const r = await t.request('POST', `/v1/subscriptions/${name}/ack`, { body: { positions } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.results as { position: string; ok: boolean; code?: string }[];
}

describe('subscriptions over REST', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp();
  });
  after(async () => t?.close());

  it('refuses an invalid CEL filter with its position, and bad fields by path; nothing is created', async () => {
    const name = uniq('bad');
    const r = await t.request('POST', '/v1/subscriptions', {
      body: {
        name,
        topics: ['decisions.>', 'a..b'],
        filter: 'decision.priority >',
        ordering: 'sideways',
        transform: '$x(',
      },
    });
    assert.equal(r.status, 400);
    const paths = r.body.error.details.errors.map((e: { path: string }) => e.path).sort();
    assert.deepEqual(paths, ['/filter', '/ordering', '/topics/1', '/transform']);
    const f = r.body.error.details.errors.find((e: { path: string }) => e.path === '/filter');
    assert.equal(typeof f.column, 'number');
    assert.equal((await t.request('GET', `/v1/subscriptions/${name}`)).status, 404);
  });

  it('delivers the DESIGN 5 shape with prevPosition per key; acks answer per position; acking twice succeeds', async () => {
    const name = await create(t, { filter: 'decision.priority >= 5' });
    const pos = await publish(t, [
      dec(1, { portfolioId: 'pf-a' }),
      dec(2, { portfolioId: 'pf-a', priority: 1 }),
      dec(3, { portfolioId: 'pf-a' }),
    ]);
    const ds = await fetchN(t, name, 2);
    assert.deepEqual(
      ds.map((d) => d.position),
      [pos[0], pos[2]],
    );
    const [a, b] = ds;
    assert.equal(a.prevPosition, null);
    assert.equal(b.prevPosition, pos[0]);
    assert.equal(a.deliveryCount, 1);
    assert.equal(a.key, 'pf-a');
    assert.equal(a.decision.decisionId, 'dec-000001');
    assert.ok(a.epoch && Array.isArray(a.topics));
    const res = await ack(t, name, [pos[0], pos[0], '0:999999', 'nonsense']);
    assert.deepEqual(
      res.map((x) => x.ok),
      [true, true, false, false],
    );
    assert.equal(res[2]?.code, 'UNKNOWN_DELIVERY');
    assert.equal(res[3]?.code, 'INVALID_POSITION');
    assert.deepEqual(
      (await ack(t, name, [pos[2], pos[0]])).map((x) => x.ok),
      [true, true],
    );
  });

  it('redelivers after the ack timeout, then dead-letters after maxDeliveries (list, replay, purge)', async () => {
    const name = await create(t, {
      ackTimeoutMs: 150,
      maxDeliveries: 2,
      backoff: { initialMs: 0, maxMs: 0, multiplier: 1 },
    });
    const [p] = await publish(t, [dec(10, { portfolioId: uniq('pf') })]);
    const first = await fetchN(t, name, 1);
    assert.equal(first[0]?.deliveryCount, 1);
    const second = await fetchN(t, name, 1);
    assert.equal(second[0]?.position, p);
    assert.equal(second[0]?.deliveryCount, 2);
    await new Promise((r) => setTimeout(r, 400));
    const dl = await t.request('GET', `/v1/subscriptions/${name}/dead-letters`);
    assert.equal(dl.status, 200);
    assert.deepEqual(
      dl.body.deadLetters.map((l: { reason: string }) => l.reason),
      ['max_deliveries'],
    );
    const rp = await t.request('POST', `/v1/subscriptions/${name}/dead-letters/replay`, { body: {} });
    assert.equal(rp.body.replayed, 1);
    const again = await fetchN(t, name, 1);
    assert.equal(again[0]?.position, p);
    const pg = await t.request('DELETE', `/v1/subscriptions/${name}/dead-letters`);
    assert.equal(pg.body.purged, 1);
  });

  it('does not deliver expired decisions; a halt overtakes its key backlog, flagged expedited', async () => {
    const name = await create(t, {});
    const k = uniq('pf');
    const pos = await publish(t, [
      dec(20, { portfolioId: k, expiresAt: '2000-01-01T00:00:00Z' }),
      dec(21, { portfolioId: k }),
      dec(22, { portfolioId: k }),
      dec(23, { portfolioId: k, type: 'halt' }),
    ]);
    await new Promise((r) => setTimeout(r, 200)); // all four are waiting before the first fetch
    const ds = await fetchN(t, name, 3);
    if (ds.length === 0)
      console.error(JSON.stringify((await t.request('GET', `/v1/subscriptions/${name}`)).body.status));
    assert.deepEqual(
      ds.map((d) => d.position),
      [pos[3], pos[1], pos[2]],
    );
    assert.equal(ds[0].expedited, true);
    assert.equal(ds[1].prevPosition, pos[3], 'the chain follows the delivery order');
  });

  it('one poisoned key (dead letters off) holds only itself until skipped', async () => {
    const name = await create(t, { ackTimeoutMs: 100, maxDeliveries: 1, deadLetter: false });
    const bad = uniq('pf-bad');
    const good = uniq('pf-good');
    const pos = await publish(t, [
      dec(30, { portfolioId: bad }),
      dec(31, { portfolioId: bad }),
      dec(32, { portfolioId: good }),
    ]);
    const first = await fetchN(t, name, 3);
    assert.deepEqual(first.map((d) => d.position).sort(), [...pos].sort());
    await ack(t, name, [pos[1], pos[2]]);
    await new Promise((r) => setTimeout(r, 300)); // pos[0] times out and is held: maxDeliveries 1
    const pos2 = await publish(t, [dec(34, { portfolioId: bad }), dec(33, { portfolioId: good })]);
    const more = await fetchN(t, name, 2, 800);
    assert.deepEqual(
      more.map((d) => d.position),
      [pos2[1]],
      'the good key flows, the poisoned one waits',
    );
    await ack(t, name, [pos2[1]]);
    const view = await t.request('GET', `/v1/subscriptions/${name}`);
    assert.equal(view.body.status.held, 1);
    assert.equal(
      (await t.request('POST', `/v1/subscriptions/${name}/skip`, { body: { position: pos[0] } })).status,
      200,
    );
    const after = await fetchN(t, name, 1);
    assert.deepEqual(
      after.map((d) => d.position),
      [pos2[0]],
    );
  });

  it('conflate delivers only the latest waiting revision', async () => {
    const name = await create(t, { slowConsumer: { policy: 'conflate' } });
    const k = uniq('pf');
    const base = dec(40, { portfolioId: k });
    const pos = await publish(t, [
      base,
      { ...base, revision: 2, quantity: '2' },
      { ...base, revision: 3, quantity: '3' },
    ]);
    await new Promise((r) => setTimeout(r, 200));
    const ds = await fetchN(t, name, 3, 800);
    assert.deepEqual(
      ds.map((d) => d.position),
      [pos[2]],
    );
    assert.equal((await t.request('GET', `/v1/subscriptions/${name}`)).body.status.counters.superseded, 2);
  });

  it('pause stops delivery, resume continues; a live filter change applies without reconnect; both audited', async () => {
    const name = await create(t, {});
    assert.equal((await t.request('POST', `/v1/subscriptions/${name}/pause`)).body.state, 'paused');
    const k = uniq('pf');
    await publish(t, [dec(50, { portfolioId: k, priority: 2 }), dec(51, { portfolioId: k, priority: 8 })]);
    assert.deepEqual(await fetchAll(t, name, 10, 300), []);
    const patched = await t.request('PATCH', `/v1/subscriptions/${name}`, {
      body: { filter: 'decision.priority > 5', version: 2 },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const stale = await t.request('PATCH', `/v1/subscriptions/${name}`, {
      body: { maxInFlight: 5, version: 2 },
    });
    assert.equal(stale.body.error.code, 'VERSION_CONFLICT');
    await t.request('POST', `/v1/subscriptions/${name}/resume`);
    const ds = await fetchN(t, name, 2, 1000);
    assert.deepEqual(
      ds.map((d) => d.decision.priority),
      [8],
    );
    const audit = await t.request('GET', '/v1/audit?limit=1000');
    if (audit.status === 200) {
      const acts = JSON.stringify(audit.body);
      for (const a of [
        'subscription.create',
        'subscription.pause',
        'subscription.update',
        'subscription.resume',
      ])
        assert.ok(acts.includes(a), a);
    }
  });

  it('resumes from the last acks after a restart; unacknowledged deliveries come again', async () => {
    const name = await create(t, {});
    const k = uniq('pf');
    const pos = await publish(t, [
      dec(60, { portfolioId: k }),
      dec(61, { portfolioId: k }),
      dec(62, { portfolioId: k }),
    ]);
    const ds = await fetchN(t, name, 3);
    assert.equal(ds.length, 3);
    await ack(t, name, [pos[0]]);
    const dir = t.dataDir;
    await t.close({ keep: true });
    t = await startTestApp({}, dir);
    const again = await fetchN(t, name, 2);
    assert.deepEqual(
      again.map((d) => d.position),
      [pos[1], pos[2]],
    );
    assert.equal(again[0].prevPosition, pos[0]);
    assert.equal(again[0].deliveryCount, 2);
  });
});
