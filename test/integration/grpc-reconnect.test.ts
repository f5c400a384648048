/**
 * The TypeScript gRPC subscriber reconnects by itself across a restart of the service on the same
 * data directory and port: what it had not acknowledged comes again, what it had acknowledged does
 * not, and decisions published after the restart follow.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GrpcSubscriber, type GrpcDelivery, type GrpcSubscriberEvent } from '../../src/client/grpc.ts';
import { ADMIN_KEY, startTestApp } from '../helpers/app.ts';
import { makeDecision } from '../helpers/decisions.ts';

async function nextOf(
  it: AsyncIterator<GrpcSubscriberEvent>,
  type: GrpcSubscriberEvent['type'],
  ms = 10_000,
): Promise<GrpcSubscriberEvent> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no ${type} event`);
    const r = await Promise.race([
      it.next(),
      new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), left).unref()),
    ]);
    if (r === 'timeout') throw new Error(`no ${type} event`);
    if (r.done) throw new Error('iteration ended');
    if (r.value.type === type) return r.value;
  }
}

async function deliveries(it: AsyncIterator<GrpcSubscriberEvent>, n: number): Promise<GrpcDelivery[]> {
  const out: GrpcDelivery[] = [];
  while (out.length < n) {
    const e = await nextOf(it, 'deliveries');
    if (e.type === 'deliveries') out.push(...e.deliveries);
  }
  return out;
}

describe('gRPC subscriber reconnection', { timeout: 60_000 }, () => {
  it('resumes from the durable cursor after a restart', async () => {
    let t = await startTestApp({ grpc: { port: 0 } });
    const dir = t.dataDir;
    const address = (await t.app.listen()).grpc;
    const port = Number(address.split(':')[1]);
    let sub: GrpcSubscriber | undefined;
    try {
      const name = `grpc-reconnect-${process.pid}`;
      const r = await t.request('POST', '/v1/subscriptions', { body: { name, topics: ['decisions.>'] } });
      assert.equal(r.status, 201);
      assert.equal(
        (await t.request('POST', '/v1/decisions', { body: [1, 2, 3, 4, 5].map((i) => makeDecision(i)) }))
          .status,
        200,
      );
      sub = new GrpcSubscriber({
        address,
        token: ADMIN_KEY,
        subscription: name,
        credits: 100,
        backoff: { initialMs: 50, maxMs: 500 },
      });
      const it = sub[Symbol.asyncIterator]();
      await nextOf(it, 'subscribed');
      const first = await deliveries(it, 5);
      const acked = first.slice(0, 3).map((d) => d.position);
      sub.ack(acked);
      await new Promise((res) => setTimeout(res, 300)); // the ack reaches the server before the restart

      await t.close({ keep: true });
      const rec = await nextOf(it, 'reconnecting');
      assert.equal(rec.type === 'reconnecting' && rec.error.code, 'SHUTTING_DOWN');

      t = await startTestApp({ grpc: { port } }, dir);
      await t.app.listen();
      await nextOf(it, 'subscribed');
      assert.equal(
        (await t.request('POST', '/v1/decisions', { body: [6, 7].map((i) => makeDecision(i)) })).status,
        200,
      );
      const again = await deliveries(it, 4);
      const ids = again.map((d) => d.decision['decisionId']);
      assert.deepEqual(ids.slice(0, 2).sort(), ['dec-000004', 'dec-000005'], JSON.stringify(ids));
      assert.deepEqual(ids.slice(2).sort(), ['dec-000006', 'dec-000007']);
      for (const d of again) assert.ok(!acked.includes(d.position), 'an acknowledged delivery came again');
    } finally {
      sub?.close();
      await t.close();
    }
  });
});
