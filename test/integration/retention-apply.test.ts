/**
 * Retention applied to the real embedded log with small segments (ADR 0017): it removes what the
 * policies let go, whole segments only, and nothing a waiting durable subscription still needs; a drop
 * policy tells the subscription and the ledger; the index forgets what the log no longer holds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import type { ConsumerNotice } from '../../src/delivery/index.ts';
import { WebSocket } from 'ws';

const FUTURE = '2099-01-01T00:00:00Z';
/** 64 KiB segments: about 100 decisions each. */
const SMALL = { log: { segmentBytes: 64 * 1024 }, retention: { intervalMs: 86_400_000 } };

async function app(): Promise<TestApp> {
  return startTestApp(SMALL);
}

/** Publishes `n` decisions (ids `${prefix}-i`, portfolio `pf-${i % 5}`) in batches; returns their positions. */
async function publish(t: TestApp, prefix: string, n: number, portfolio?: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 50); j++)
      batch.push(
        makeDecision(j, {
          decisionId: `${prefix}-${j}`,
          portfolioId: portfolio ?? `pf-${j % 5}`,
          expiresAt: FUTURE,
        }),
      );
    const r = await t.request('POST', '/v1/decisions', { body: batch });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(...(r.body.results as { position: string }[]).map((x) => x.position));
  }
  return out;
}

const offset = (pos: string) => Number(pos.split(':')[1]);
const first = (t: TestApp) => t.app.ctx.log.extents()[0]!.first;

async function put(t: TestApp, name: string, body: Record<string, unknown>): Promise<void> {
  const r = await t.request('PUT', `/v1/retention-policies/${name}`, { body });
  assert.ok(r.status === 201 || r.status === 200, JSON.stringify(r.body));
}

async function subscribe(t: TestApp, name: string, topics: string[]): Promise<void> {
  const r = await t.request('POST', '/v1/subscriptions', { body: { name, topics, start: 'earliest' } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

async function fetchN(t: TestApp, name: string, n: number): Promise<{ position: string }[]> {
  const out: { position: string }[] = [];
  const end = Date.now() + 10_000;
  while (out.length < n && Date.now() < end) {
    const r = await t.request('POST', `/v1/subscriptions/${name}/fetch`, {
      body: { max: Math.min(1000, n - out.length), waitMs: 200 },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(...r.body.deliveries);
  }
  return out;
}

async function ack(t: TestApp, name: string, positions: string[]): Promise<void> {
  const r = await t.request('POST', `/v1/subscriptions/${name}/ack`, { body: { positions } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok(r.body.results.every((x: { ok: boolean }) => x.ok));
}

async function metric(t: TestApp, name: string): Promise<number> {
  const text = await t.app.ctx.metrics.registry.metrics();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').pop());
  return sum;
}

describe('retention applied to the log', () => {
  it('count: keeps the newest maxCount, removes whole segments before them, and the index forgets them', async () => {
    const t = await app();
    try {
      const pos = await publish(t, 'cnt', 1500);
      const bytesBefore = t.app.ctx.log.storedBytes();
      assert.equal((await t.app.ctx.retention.run()).partitions[0]?.removedRecords, 0, 'no policy: keep all');
      await put(t, 'all', { pattern: 'decisions.>', maxCount: 300 });
      const report = await t.app.ctx.retention.run();
      const p = report.partitions[0]!;
      assert.equal(p.policyCut, offset(pos[1200]!), 'the policy lets go all but the newest 300');
      const f = first(t);
      assert.equal(p.firstAfter, f);
      assert.ok(f > 1000 && f <= 1200, `segment granularity: first ${f} a little below 1200`);
      assert.ok(t.app.ctx.log.storedBytes() < bytesBefore / 2);
      for (const i of [0, 500, f - 1]) {
        const g = await t.request('GET', `/v1/decisions/cnt-${i}`);
        assert.equal(g.status, 404, `cnt-${i} is gone`);
      }
      for (const i of [f, 1200, 1499])
        assert.equal((await t.request('GET', `/v1/decisions/cnt-${i}`)).status, 200);
      const q = await t.request('GET', '/v1/decisions?limit=1000&order=asc');
      assert.equal(q.status, 200);
      const listed = q.body.items ?? q.body.decisions ?? q.body.entries;
      assert.ok(Array.isArray(listed), JSON.stringify(q.body).slice(0, 200));
      assert.equal(listed.length, Math.min(1000, 1500 - f));
      assert.ok(listed.every((d: { position: string }) => offset(d.position) >= f));
      assert.equal(await metric(t, 'cds_retention_removed_records_total{partition="0",policy="all"}'), f);
      assert.ok((await metric(t, 'cds_retention_removed_bytes_total')) > 0);
      // Publishing a forgotten decision again stores it anew (the dedup window went with the log).
      const again = await t.request('POST', '/v1/decisions', {
        body: makeDecision(0, { decisionId: 'cnt-0', portfolioId: 'pf-0', expiresAt: FUTURE }),
      });
      assert.equal(again.status, 200);
      assert.equal(again.body.duplicate, false);
      // A second run with nothing new removes nothing.
      assert.equal((await t.app.ctx.retention.run()).partitions[0]?.removedRecords, 0);
    } finally {
      await t.close();
    }
  });

  it('age: removes what is older than maxAgeMs; a more specific policy keeps its topics', async () => {
    const t = await app();
    try {
      await publish(t, 'old', 600);
      await put(t, 'all', { pattern: 'decisions.>', maxAgeMs: 0 });
      await put(t, 'keep-pf9', { pattern: 'decisions.equity.pf-9' });
      await publish(t, 'keep', 1, 'pf-9');
      await publish(t, 'new', 300);
      const r = await t.app.ctx.retention.run(Date.now() + 1);
      assert.equal(r.partitions[0]?.policyCut, 600, 'the kept pf-9 decision stops retention');
      assert.ok(first(t) > 400 && first(t) <= 600);
      assert.equal((await t.request('GET', '/v1/decisions/keep-0')).status, 200);
      await t.request('DELETE', '/v1/retention-policies/keep-pf9');
      const r2 = await t.app.ctx.retention.run(Date.now() + 1);
      assert.ok(r2.partitions[0]!.firstAfter > 600, 'with the policy gone, the rest may go');
    } finally {
      await t.close();
    }
  });

  it('wait: nothing a durable subscription has not acknowledged is removed; acks let retention go on', async () => {
    const t = await app();
    try {
      await subscribe(t, 'slow', ['decisions.equity.pf-1']);
      await subscribe(t, 'other', ['decisions.equity.pf-2']);
      const pos = await publish(t, 'w', 1500);
      await put(t, 'all', { pattern: 'decisions.>', maxAgeMs: 0, onUnacknowledged: 'wait' });
      // 'other' acknowledges everything it gets; 'slow' acknowledges its first 60 only.
      const o = await fetchN(t, 'other', 300);
      assert.equal(o.length, 300);
      await ack(
        t,
        'other',
        o.map((d) => d.position),
      );
      const s = await fetchN(t, 'slow', 100);
      await ack(
        t,
        'slow',
        s.slice(0, 60).map((d) => d.position),
      );
      const held = offset(s[60]!.position);
      // Retention goes by the lower of the live and the committed ack floor: commit the acks first.
      await t.app.ctx.deliveries.flush();
      const r = await t.app.ctx.retention.run(Date.now() + 1);
      const p = r.partitions[0]!;
      assert.deepEqual(p.waitingFor, [{ subscription: 'slow', offset: held }]);
      assert.equal(p.cut, held);
      assert.ok(first(t) <= held && first(t) > 0, `first ${first(t)} at or below the held ${held}`);
      assert.deepEqual(p.lost, []);
      // Every decision the slow subscription still needs is there, and it gets them all.
      for (let i = held; i < 1500; i += 5)
        assert.equal((await t.request('GET', `/v1/decisions/w-${i}`)).status, 200);
      const stats = (await t.request('GET', '/v1/subscriptions/slow/stats')).body;
      assert.equal(stats.retentionLost.ranges.length, 0);
      const rest = await fetchN(t, 'slow', 300);
      const all = [...s.slice(60), ...rest].map((d) => d.position);
      assert.equal(all.length, 300 - 60, 'the slow subscription gets everything it had not acknowledged');
      await ack(t, 'slow', all);
      await t.app.ctx.deliveries.flush();
      const r2 = await t.app.ctx.retention.run(Date.now() + 1);
      assert.ok(
        r2.partitions[0]!.firstAfter > offset(pos[1300]!),
        `all acknowledged: retention goes on ${JSON.stringify(r2)}`,
      );
    } finally {
      await t.close();
    }
  });

  it('drop: retention goes on past an unacknowledging subscription, which is told, and the ledger records it', async () => {
    const t = await app();
    try {
      await subscribe(t, 'lagger', ['decisions.equity.pf-3']);
      await publish(t, 'd', 1500);
      await put(t, 'all', { pattern: 'decisions.>', maxCount: 200, onUnacknowledged: 'drop' });
      const got = await fetchN(t, 'lagger', 20); // read, never acknowledged
      // A streaming consumer (what the WebSocket and SSE transports attach) is sent a notice.
      const notices: ConsumerNotice[] = [];
      const caller = { principalId: 'test', grants: [{ action: 'admin', pattern: '>' }] } as never;
      const stream = await t.app.ctx.subscriptions.attach(
        'lagger',
        caller,
        { send: () => undefined, close: () => undefined, notice: (n) => notices.push(n) },
        0,
      );
      const floor = offset(got[0]!.position);
      const r = await t.app.ctx.retention.run();
      const p = r.partitions[0]!;
      const f = first(t);
      assert.ok(f > 1000, `first ${f}`);
      assert.deepEqual(p.waitingFor, []);
      // Pending: every pf-3 decision below the cut that it had read (20 delivered, the rest waiting).
      const pending = [...Array(f).keys()].filter((j) => j % 5 === 3).length;
      assert.deepEqual(p.lost, [{ subscription: 'lagger', from: floor, to: f, pending }]);
      const stats = (await t.request('GET', '/v1/subscriptions/lagger/stats')).body;
      assert.equal(stats.retentionLost.pending, pending);
      assert.deepEqual(
        stats.retentionLost.ranges.map((x: { from: string; to: string }) => [x.from, x.to]),
        [[`0:${floor}`, `0:${f}`]],
      );
      assert.deepEqual(notices, [
        {
          type: 'retention-lost',
          subscription: 'lagger',
          partition: 0,
          from: `0:${floor}`,
          to: `0:${f}`,
          pending,
          at: notices[0]?.at,
        },
      ]);
      stream.detach();
      assert.equal(await t.app.ctx.ledger.retentionLost('lagger', 0, floor), true);
      assert.equal(await t.app.ctx.ledger.retentionLost('lagger', 0, f), false);
      assert.equal(await metric(t, 'cds_retention_subscription_losses_total{subscription="lagger"}'), 1);
      // Its acks of lost deliveries are harmless, and it goes on from the first record still there.
      await ack(
        t,
        'lagger',
        got.map((d) => d.position),
      );
      const next = await fetchN(t, 'lagger', 5);
      assert.ok(next.length > 0 && next.every((d) => offset(d.position) >= f));
    } finally {
      await t.close();
    }
  });

  it('drop: a WebSocket consumer gets a notice frame with the lost range', async () => {
    const t = await app();
    try {
      const url = (await t.app.listen()).http;
      await subscribe(t, 'ws-lag', ['decisions.equity.pf-4']);
      await publish(t, 'ws', 1000);
      await put(t, 'all', { pattern: 'decisions.>', maxCount: 100, onUnacknowledged: 'drop' });
      const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws`, {
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
      });
      const frames: Record<string, unknown>[] = [];
      ws.on('message', (m) => frames.push(JSON.parse(String(m)) as Record<string, unknown>));
      await new Promise((res, rej) => ws.once('open', res).once('error', rej));
      ws.send(JSON.stringify({ op: 'subscribe', subscription: 'ws-lag', credits: 0 }));
      const until = async (type: string) => {
        const end = Date.now() + 5000;
        while (!frames.some((f) => f['type'] === type) && Date.now() < end)
          await new Promise((r) => setTimeout(r, 20));
        return frames.find((f) => f['type'] === type);
      };
      assert.ok(await until('subscribed'));
      await t.app.ctx.retention.run();
      const notice = await until('notice');
      ws.close();
      const f = first(t);
      assert.ok(f > 500);
      assert.deepEqual(
        { ...notice, at: undefined },
        {
          type: 'notice',
          notice: 'retention-lost',
          subscription: 'ws-lag',
          partition: 0,
          from: '0:4',
          to: `0:${f}`,
          pending: [...Array(f).keys()].filter((j) => j % 5 === 4).length,
          at: undefined,
        },
      );
    } finally {
      await t.close();
    }
  });
});
