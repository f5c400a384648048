/**
 * The gRPC API seen by a generic client that knows only the address: it lists the services by
 * server reflection, builds its stubs from the descriptors the server returns, creates a
 * subscription, publishes a batch and reads it back on a Subscribe stream; health per service.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import { makeDecision } from '../helpers/decisions.ts';

type Any = any; // dynamic stubs built from reflection have no static types

const require = createRequire(import.meta.url);
const REFLECTION_PROTO = require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');

function reflectionStub(address: string): Any {
  const def = protoLoader.loadSync(REFLECTION_PROTO, { keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as Any;
  return new pkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
}

/** Asks the reflection service one question per request; answers in order. */
async function reflect(address: string, requests: object[]): Promise<Any[]> {
  const client = reflectionStub(address);
  const call = client.ServerReflectionInfo();
  const answers: Any[] = [];
  const done = new Promise<void>((resolve, reject) => {
    call.on('data', (m: Any) => {
      answers.push(m);
      if (answers.length === requests.length) call.end();
    });
    call.on('end', resolve);
    call.on('error', reject);
  });
  for (const r of requests) call.write(r);
  await done;
  client.close();
  return answers;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** Stubs of every service reachable from the given symbols, from reflection alone. */
async function stubsByReflection(address: string, symbols: string[]): Promise<Any> {
  const answers = await reflect(
    address,
    symbols.map((s) => ({ file_containing_symbol: s })),
  );
  const files = new Map<string, Buffer>();
  for (const a of answers)
    for (const f of a.file_descriptor_response.file_descriptor_proto as Buffer[])
      files.set(f.toString('base64'), f);
  // A FileDescriptorSet is `repeated FileDescriptorProto file = 1`.
  const set = Buffer.concat([...files.values()].flatMap((f) => [Buffer.from([0x0a]), varint(f.length), f]));
  return grpc.loadPackageDefinition(
    protoLoader.loadFileDescriptorSetFromBuffer(set, { keepCase: false, enums: String }),
  );
}

const md = () => {
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${ADMIN_KEY}`);
  return m;
};

const call = <T>(client: Any, method: string, req: object): Promise<T> =>
  new Promise((resolve, reject) =>
    client[method](req, md(), (e: Error | null, r: T) => (e ? reject(e) : resolve(r))),
  );

describe('gRPC API: a generic client by reflection', { timeout: 90_000 }, () => {
  let t: TestApp;
  let address: string;
  before(async () => {
    t = await startTestApp({ grpc: { port: 0 } });
    address = (await t.app.listen()).grpc;
  });
  after(async () => t?.close());

  it('lists the services, publishes a batch and reads it on a Subscribe stream', async () => {
    const [list] = await reflect(address, [{ list_services: '' }]);
    const names = (list.list_services_response.service as { name: string }[]).map((s) => s.name).sort();
    for (const s of [
      'cds.v1.DecisionService',
      'cds.v1.SubscriptionService',
      'grpc.health.v1.Health',
      'grpc.reflection.v1.ServerReflection',
    ])
      assert.ok(names.includes(s), `${s} in ${names.join(', ')}`);

    const pkg = await stubsByReflection(address, [
      'cds.v1.DecisionService',
      'cds.v1.SubscriptionService',
      'grpc.health.v1.Health',
    ]);
    const creds = grpc.credentials.createInsecure();
    const decisions = new pkg.cds.v1.DecisionService(address, creds);
    const subs = new pkg.cds.v1.SubscriptionService(address, creds);
    const health = new pkg.grpc.health.v1.Health(address, creds);

    for (const service of ['', 'cds.v1.DecisionService', 'cds.v1.SubscriptionService']) {
      const h = await call<Any>(health, 'Check', { service });
      assert.equal(h.status, 'SERVING', service);
    }

    const name = `grpc-generic-${process.pid}`;
    const created = await call<Any>(subs, 'CreateSubscription', {
      spec: Buffer.from(JSON.stringify({ name, topics: ['decisions.>'] })),
    });
    assert.equal(JSON.parse(created.subscription.json.toString()).name, name);

    const batch = [1, 2, 3].map((i) => Buffer.from(JSON.stringify(makeDecision(9000 + i))));
    const published = await call<Any>(decisions, 'Publish', { decisions: batch });
    assert.equal(published.results.length, 3);
    const positions = published.results.map((r: Any) => r.position);

    const stream = subs.Subscribe({ subscription: name, window: 10 }, md());
    const got: Any[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (m: Any) => {
        for (const d of m.deliveries?.deliveries ?? []) got.push(JSON.parse(d.toString()));
        if (got.length >= 3) resolve();
      });
      stream.on('error', (e: Error) => reject(e));
    });
    stream.cancel();
    assert.deepEqual(
      got.map((d) => d.position),
      positions,
    );
    assert.equal(got[0].decision.decisionId, 'dec-009001');

    const one = await call<Any>(decisions, 'Get', { decision_id: 'dec-009002' });
    assert.equal(JSON.parse(one.decisions[0].toString()).position, positions[1]);

    const pages: Any[] = [];
    await new Promise<void>((resolve, reject) => {
      const q = decisions.Query({ page_size: 2, limit: 3 }, md());
      q.on('data', (p: Any) => pages.push(p));
      q.on('end', resolve);
      q.on('error', reject);
    });
    assert.equal(pages.flatMap((p) => p.decisions).length, 3);
    for (const c of [decisions, subs, health]) c.close();
  });
});
