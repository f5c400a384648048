/**
 * Bad input over gRPC: each gets the registry's status and rich details (google.rpc.Status in the
 * grpc-status-details-bin trailer), and neither the server nor another open stream is disturbed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { bearer, connect, errorDetails } from '../../src/client/grpc.ts';
import type { PublishResponse } from '../../src/transports/grpc/gen/cds/v1/decisions.ts';
import {
  SessionResponse,
  type SessionRequest,
  type SubscribeResponse,
} from '../../src/transports/grpc/gen/cds/v1/subscriptions.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import { makeDecision } from '../helpers/decisions.ts';

const LIMIT = 64 * 1024;

/** A unary call with raw bytes both ways (what a broken client would send). */
function rawUnary(address: string, path: string, body: Buffer, md: grpc.Metadata): Promise<Buffer> {
  const c = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) =>
    c.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      md,
      (e, r) => {
        c.close();
        if (e) reject(e);
        else resolve(r as Buffer);
      },
    ),
  );
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

/** The status a stream ends with. */
function ending(s: grpc.ClientDuplexStream<SessionRequest, SessionResponse>): Promise<grpc.ServiceError> {
  return new Promise((resolve) => {
    s.on('data', () => undefined);
    s.on('error', resolve);
  });
}

async function failure(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error('the call succeeded');
}

describe('gRPC bad input', { timeout: 90_000 }, () => {
  let t: TestApp;
  let address: string;
  let client: ReturnType<typeof connect>;
  const publish = (decisions: Buffer[], md = bearer(ADMIN_KEY), opts: grpc.CallOptions = {}) =>
    new Promise<PublishResponse>((resolve, reject) =>
      client.decisions.publish({ decisions }, md, opts, (e, r) => (e ? reject(e) : resolve(r))),
    );
  before(async () => {
    t = await startTestApp({ grpc: { port: 0 }, http: { port: 0, bodyLimitBytes: LIMIT } });
    address = (await t.app.listen()).grpc;
    client = connect(address);
  });
  after(async () => {
    client?.close();
    await t?.close();
  });

  it('answers each bad call precisely while another stream keeps flowing', async () => {
    const name = `grpc-errors-${process.pid}`;
    assert.equal(
      (await t.request('POST', '/v1/subscriptions', { body: { name, topics: ['decisions.>'] } })).status,
      201,
    );
    const got: string[] = [];
    const stream = client.subscriptions.subscribe({ subscription: name, window: 100 }, bearer(ADMIN_KEY));
    let streamError: unknown;
    stream.on('data', (m: SubscribeResponse) => {
      for (const d of m.deliveries?.deliveries ?? [])
        got.push(JSON.parse(Buffer.from(d).toString()).position);
    });
    stream.on('error', (e) => (streamError = e));
    const one = (i: number) => Buffer.from(JSON.stringify(makeDecision(i)));
    await publish([one(1)]);

    // Malformed protobuf (wire type 7 does not exist).
    let e = await failure(
      rawUnary(address, '/cds.v1.DecisionService/Publish', Buffer.from([0x0f, 0x00]), bearer(ADMIN_KEY)),
    );
    let d = errorDetails(e);
    assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(d.code, 'VALIDATION_FAILED');
    assert.equal(d.fieldViolations[0]?.reason, 'malformed_protobuf');

    // A decision that is not valid JSON, and one that fails the schema: field paths by item.
    e = await failure(publish([one(2), Buffer.from('{"decisionId":')]));
    d = errorDetails(e);
    assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(d.code, 'MALFORMED_JSON');
    assert.equal(d.fieldViolations[0]?.field, '/1');
    e = await failure(publish([Buffer.from(JSON.stringify({ ...makeDecision(3), quantity: 12 }))]));
    d = errorDetails(e);
    assert.equal(d.code, 'VALIDATION_FAILED');
    assert.ok(
      d.fieldViolations.some((v) => v.field === '/0/quantity'),
      JSON.stringify(d.fieldViolations),
    );

    // Larger than the limit.
    e = await failure(publish([Buffer.alloc(LIMIT + 1000, 0x20)]));
    assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED);

    // Unknown method.
    e = await failure(rawUnary(address, '/cds.v1.DecisionService/Nope', Buffer.alloc(0), bearer(ADMIN_KEY)));
    assert.equal(e.code, grpc.status.UNIMPLEMENTED);

    // Missing and wrong credentials.
    e = await failure(publish([one(4)], new grpc.Metadata()));
    assert.equal(e.code, grpc.status.UNAUTHENTICATED);
    assert.equal(errorDetails(e).code, 'UNAUTHENTICATED');
    e = await failure(publish([one(4)], bearer('cds_wrong-key-0123456789abcdefghijklmnopqrst')));
    assert.equal(e.code, grpc.status.UNAUTHENTICATED);
    const xApiKey = new grpc.Metadata();
    xApiKey.set('x-api-key', 'nope');
    assert.equal((await failure(publish([one(4)], xApiKey))).code, grpc.status.UNAUTHENTICATED);

    // An expired deadline.
    e = await failure(publish([one(5)], bearer(ADMIN_KEY), { deadline: Date.now() - 1 }));
    assert.equal(e.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal((await t.request('GET', '/v1/decisions/dec-000005')).status, 404, 'nothing was published');

    // A missing subscription on a stream: NOT_FOUND as the stream's status.
    e = await new Promise<grpc.ServiceError>((resolve) => {
      const s = client.subscriptions.subscribe({ subscription: 'no-such', window: 0 }, bearer(ADMIN_KEY));
      s.on('data', () => undefined);
      s.on('error', resolve);
    });
    assert.equal(e.code, grpc.status.NOT_FOUND);

    // The server and the open stream are fine: a later publish arrives on it.
    const last = await publish([one(6), one(7)]);
    const deadline = Date.now() + 5000;
    while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(streamError, undefined);
    assert.deepEqual(
      got.slice(1),
      last.results.map((r) => r.position),
    );
    stream.cancel();
  });
  it('refuses out-of-scope calls with PERMISSION_DENIED and rate-limited ones with RetryInfo, audited', async () => {
    const createKey = async (name: string, scopes: string[], rateLimits?: object) => {
      const r = await t.request('POST', '/v1/keys', {
        body: { name, scopes, ...(rateLimits ? { rateLimits } : {}) },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return (r.body as { key: string }).key;
    };
    const one = (i: number) => Buffer.from(JSON.stringify(makeDecision(i)));
    const fx = await createKey(`grpc-fx-${process.pid}`, ['publish:decisions.fx.>']);
    let e = await failure(publish([one(100)], bearer(fx)));
    assert.equal(e.code, grpc.status.PERMISSION_DENIED);
    assert.equal(errorDetails(e).code, 'FORBIDDEN');

    const reader = await createKey(`grpc-reader-${process.pid}`, ['subscribe:decisions.fx.>']);
    e = await failure(
      new Promise((resolve, reject) =>
        client.subscriptions.createSubscription(
          { spec: Buffer.from(JSON.stringify({ name: `nope-${process.pid}`, topics: ['decisions.>'] })) },
          bearer(reader),
          (err, r) => (err ? reject(err) : resolve(r)),
        ),
      ),
    );
    assert.equal(e.code, grpc.status.PERMISSION_DENIED);

    const slow = await createKey(`grpc-slow-${process.pid}`, ['publish:>'], { decisionsPerSecond: 0.5 });
    await publish([one(101)], bearer(slow));
    e = await failure(publish([one(102)], bearer(slow)));
    assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED);
    const d = errorDetails(e);
    assert.equal(d.code, 'RATE_LIMITED');
    assert.ok((d.retryDelayMs ?? 0) >= 1000, JSON.stringify(d));

    const records = (await t.request('GET', '/v1/audit?limit=1000')).body.records as {
      action: string;
      details: { code?: string };
    }[];
    const denied = records.filter(
      (r) => r.details.code === 'FORBIDDEN' || r.details.code === 'UNAUTHENTICATED',
    );
    assert.ok(denied.length >= 2, JSON.stringify(records.slice(-5)));
  });
  it('inside streams: each bad message or stream gets its status, the open Session goes on', async () => {
    const name = `grpc-stream-errors-${process.pid}`;
    assert.equal(
      (
        await t.request('POST', '/v1/subscriptions', {
          body: { name, topics: ['decisions.>'], ordering: 'none' },
        })
      ).status,
      201,
    );
    const session = client.subscriptions.session(bearer(ADMIN_KEY));
    const answers: SessionResponse[] = [];
    let sessionError: unknown;
    session.on('data', (m: SessionResponse) => answers.push(m));
    session.on('error', (e) => (sessionError = e));
    const answer = async (pred: (m: SessionResponse) => boolean) => {
      const deadline = Date.now() + 5000;
      for (;;) {
        const i = answers.findIndex(pred);
        if (i >= 0) return answers.splice(i, 1)[0] as SessionResponse;
        if (Date.now() > deadline) throw new Error(`no answer; have ${JSON.stringify(answers.slice(-3))}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    session.write(req(1, { subscribe: { subscription: name, credits: 100, resume: Buffer.alloc(0) } }));
    assert.ok((await answer((m) => m.id === 1)).subscribed);

    // A malformed message inside the Session: answered alone (id 0: its id could not be read).
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    const rawSession = raw.makeBidiStreamRequest(
      '/cds.v1.SubscriptionService/Session',
      (b: Buffer) => b,
      (b: Buffer) => b,
      bearer(ADMIN_KEY),
    );
    const rawAnswers: Buffer[] = [];
    rawSession.on('data', (b: Buffer) => rawAnswers.push(b));
    rawSession.on('error', () => undefined);
    rawSession.write(Buffer.from([0x0f, 0x00]));
    const deadline = Date.now() + 5000;
    while (rawAnswers.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const malformed = SessionResponse.decode(rawAnswers[0] as Buffer);
    assert.equal(malformed.error?.code, 'VALIDATION_FAILED');
    assert.equal(malformed.error?.grpcCode, grpc.status.INVALID_ARGUMENT);
    assert.equal(malformed.error?.fieldErrors[0]?.code, 'malformed_protobuf');
    // ... and that stream goes on: a heartbeat is answered.
    rawSession.write(Buffer.from([0x08, 0x05, 0x3a, 0x00])); // {id: 5, heartbeat: {}}
    while (rawAnswers.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(SessionResponse.decode(rawAnswers[1] as Buffer).id, 5);
    rawSession.cancel();
    raw.close();

    // An ack of an unknown position and a negative credit: answered alone, the session goes on.
    session.write(req(2, { ack: { positions: ['0:99999999'], upTo: '' } }));
    assert.equal((await answer((m) => m.id === 2)).ackResults?.results[0]?.code, 'UNKNOWN_DELIVERY');
    session.write(req(3, { credits: { n: -5 } }));
    const neg = await answer((m) => m.id === 3);
    assert.equal(neg.error?.grpcCode, grpc.status.INVALID_ARGUMENT);
    assert.equal(neg.error?.fieldErrors[0]?.path, 'credits.n');

    // An oversized message ends its own stream with RESOURCE_EXHAUSTED.
    const big = client.subscriptions.session(bearer(ADMIN_KEY));
    const bigEnd = ending(big);
    big.write(req(1, { update: { patch: Buffer.alloc(LIMIT + 1000, 0x20) } }));
    const tooBig = await bigEnd;
    assert.equal(tooBig.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(tooBig.details, /larger than max/);

    // No credential, a wrong one, an expired deadline: the stream's status, with the registry code.
    let e = await ending(client.subscriptions.session(new grpc.Metadata()));
    assert.equal(e.code, grpc.status.UNAUTHENTICATED);
    assert.equal(errorDetails(e).code, 'UNAUTHENTICATED');
    e = await ending(client.subscriptions.session(bearer('cds_wrong-key-0123456789abcdefghijklmnopqrst')));
    assert.equal(e.code, grpc.status.UNAUTHENTICATED);
    e = await ending(client.subscriptions.session(bearer(ADMIN_KEY), { deadline: Date.now() - 1 }));
    assert.equal(e.code, grpc.status.DEADLINE_EXCEEDED);
    // An unknown method of a known service, and an unknown service.
    for (const path of ['/cds.v1.SubscriptionService/Nope', '/cds.v1.Nope/Session'])
      assert.equal(
        (await failure(rawUnary(address, path, Buffer.alloc(0), bearer(ADMIN_KEY)))).code,
        grpc.status.UNIMPLEMENTED,
        path,
      );

    // Through all of that the first Session kept flowing.
    const published = await publish([Buffer.from(JSON.stringify(makeDecision(300)))]);
    const got = await answer((m) => m.deliveries !== undefined);
    const d = JSON.parse(Buffer.from(got.deliveries?.deliveries[0] as Uint8Array).toString());
    assert.equal(d.position, published.results[0]?.position);
    session.write(req(4, { ack: { positions: [d.position], upTo: '' } }));
    assert.equal((await answer((m) => m.id === 4)).ackResults?.results[0]?.ok, true);
    assert.equal(sessionError, undefined);
    session.end();
  });
});
