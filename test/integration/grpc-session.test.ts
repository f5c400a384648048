/**
 * A gRPC Session end to end with the typed client: credits bound what is sent, acks (one unknown
 * position fails alone), a nack redelivers, a negative credit is refused for that message alone, a
 * live update, heartbeats with stream statistics; the session goes on through every error.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { bearer, connect } from '../../src/client/grpc.ts';
import type { SessionRequest, SessionResponse } from '../../src/transports/grpc/gen/cds/v1/subscriptions.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import { makeDecision } from '../helpers/decisions.ts';

/** Reads a session's messages one by one, with a timeout per read. */
class Reader {
  readonly #queue: SessionResponse[] = [];
  #wake: (() => void) | undefined;
  constructor(stream: ClientDuplexStream<SessionRequest, SessionResponse>) {
    stream.on('data', (m: SessionResponse) => {
      this.#queue.push(m);
      this.#wake?.();
    });
    stream.on('error', () => this.#wake?.());
  }
  /** The next message matching `pred` (others are dropped), or throws after `ms`. */
  async next(pred: (m: SessionResponse) => boolean, ms = 5000): Promise<SessionResponse> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.#queue.findIndex(pred);
      if (i >= 0) return this.#queue.splice(i, 1)[0] as SessionResponse;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a session message');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }
  /** Deliveries (parsed) until `n` arrived. */
  async deliveries(n: number, ms = 5000): Promise<Record<string, any>[]> {
    const out: Record<string, any>[] = [];
    while (out.length < n) {
      const m = await this.next((x) => x.deliveries !== undefined, ms);
      for (const d of m.deliveries?.deliveries ?? []) out.push(JSON.parse(Buffer.from(d).toString()));
    }
    return out;
  }
  /** Deliveries waiting now. */
  pendingDeliveries(): number {
    return this.#queue.reduce((n, m) => n + (m.deliveries?.deliveries.length ?? 0), 0);
  }
}

const req = (id: number, m: Partial<SessionRequest>): SessionRequest => ({
  id,
  subscribe: undefined,
  ack: undefined,
  nack: undefined,
  credits: undefined,
  update: undefined,
  heartbeat: undefined,
  ...m,
});

describe('gRPC Session', { timeout: 90_000 }, () => {
  let t: TestApp;
  let client: ReturnType<typeof connect>;
  before(async () => {
    t = await startTestApp({ grpc: { port: 0 } });
    client = connect((await t.app.listen()).grpc);
  });
  after(async () => {
    client?.close();
    await t?.close();
  });

  it('credits, acks, an unknown ack, a nack, a negative credit, an update and heartbeats', async () => {
    const name = `grpc-session-${process.pid}`;
    const r = await t.request('POST', '/v1/subscriptions', {
      body: { name, topics: ['decisions.>'], ackTimeoutMs: 30_000, ordering: 'none' },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const pub = await t.request('POST', '/v1/decisions', {
      body: Array.from({ length: 10 }, (_, i) => makeDecision(7000 + i)),
    });
    assert.equal(pub.status, 200);

    const stream = client.subscriptions.session(bearer(ADMIN_KEY));
    const rd = new Reader(stream);
    stream.write(req(1, { subscribe: { subscription: name, credits: 4, resume: Buffer.alloc(0) } }));
    const sub = await rd.next((m) => m.subscribed !== undefined);
    assert.equal(sub.id, 1);
    assert.equal(sub.subscribed?.subscription, name);
    const first = await rd.deliveries(4);
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(rd.pendingDeliveries(), 0, 'no delivery beyond the credits');

    stream.write(req(2, { credits: { n: -1 } }));
    const neg = await rd.next((m) => m.id === 2);
    assert.equal(neg.error?.code, 'VALIDATION_FAILED');
    assert.equal(neg.error?.grpcCode, 3);
    assert.equal(neg.error?.fieldErrors[0]?.path, 'credits.n');

    stream.write(
      req(3, {
        ack: { positions: [first[0]!['position'], '0:999999', first[1]!['position']], upTo: '' },
      }),
    );
    const acks = await rd.next((m) => m.id === 3);
    assert.deepEqual(
      acks.ackResults?.results.map((x) => [x.ok, x.code]),
      [
        [true, ''],
        [false, 'UNKNOWN_DELIVERY'],
        [true, ''],
      ],
    );

    stream.write(req(4, { nack: { positions: [first[2]!['position']], delayMs: 1 } }));
    const nacked = await rd.next((m) => m.id === 4);
    assert.equal(nacked.ackResults?.results[0]?.ok, true);
    assert.equal(nacked.ackResults?.nack, true);

    stream.write(req(5, { credits: { n: 20 } }));
    const rest = await rd.deliveries(7);
    const again = rest.find((d) => d['position'] === first[2]!['position']);
    assert.ok(again, 'the nacked delivery came again');
    assert.equal(again['deliveryCount'], 2);

    stream.write(req(6, { update: { patch: Buffer.from(JSON.stringify({ maxInFlight: 500 })) } }));
    const upd = await rd.next((m) => m.id === 6);
    assert.equal(upd.updated?.version, 2, JSON.stringify(upd.error));

    stream.write(req(7, { heartbeat: { atMs: Date.now(), stats: undefined } }));
    const hb = await rd.next((m) => m.id === 7);
    assert.ok(hb.heartbeat !== undefined);
    assert.equal(hb.heartbeat.stats?.messagesIn, 7);
    assert.equal(hb.heartbeat.stats?.itemsOut, 11);
    assert.equal(hb.heartbeat.stats?.errors, 1);

    stream.write(req(8, { ack: { positions: [], upTo: 'nonsense' } }));
    const bad = await rd.next((m) => m.id === 8);
    assert.equal(bad.ackResults?.results[0]?.code, 'INVALID_POSITION');
    stream.end();
  });
  it('resumes from a position given at subscribe; a bad resume fails that message alone', async () => {
    const name = `grpc-resume-${process.pid}`;
    assert.equal(
      (
        await t.request('POST', '/v1/subscriptions', {
          body: { name, topics: ['decisions.>'], ordering: 'none' },
        })
      ).status,
      201,
    );
    const pub = await t.request('POST', '/v1/decisions', {
      body: Array.from({ length: 4 }, (_, i) => makeDecision(7100 + i)),
    });
    const positions = (pub.body.results as { position: string }[]).map((r) => r.position);

    const s1 = client.subscriptions.session(bearer(ADMIN_KEY));
    const r1 = new Reader(s1);
    s1.write(req(1, { subscribe: { subscription: name, credits: 10, resume: Buffer.alloc(0) } }));
    const all = await r1.deliveries(4);
    s1.write(req(2, { ack: { positions: all.map((d) => d['position'] as string), upTo: '' } }));
    assert.ok((await r1.next((m) => m.id === 2)).ackResults?.results.every((x) => x.ok));
    s1.end();
    await new Promise((res) => setTimeout(res, 100));

    const s2 = client.subscriptions.session(bearer(ADMIN_KEY));
    const r2 = new Reader(s2);
    s2.write(
      req(1, {
        subscribe: { subscription: name, credits: 10, resume: Buffer.from('{"position":"nonsense"}') },
      }),
    );
    const bad = await r2.next((m) => m.id === 1);
    assert.equal(bad.error?.code, 'VALIDATION_FAILED');
    assert.equal(bad.error?.fieldErrors[0]?.path, '/resume/position');
    s2.write(
      req(2, {
        subscribe: {
          subscription: name,
          credits: 10,
          resume: Buffer.from(JSON.stringify({ position: positions[1] })),
        },
      }),
    );
    assert.ok((await r2.next((m) => m.id === 2)).subscribed !== undefined);
    const again = await r2.deliveries(3);
    assert.deepEqual(again.map((d) => d['position']).sort(), positions.slice(1).sort());
    s2.end();
  });
});
