/**
 * The gRPC API through grpcurl, a standard generic client given nothing but the address (gRPC issue:
 * "generic tools work with no .proto file at hand"): it lists and describes the services by
 * reflection, checks health, creates a subscription, publishes, reads a Subscribe stream, and shows
 * the rich error details (google.rpc.BadRequest, ErrorInfo) decoded, which needs their types served
 * by reflection in a form a strict descriptor linker accepts (src/transports/grpc/reflection.ts).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import { makeDecision } from '../helpers/decisions.ts';
import { findGrpcurl } from '../helpers/grpcurl.ts';

const found = findGrpcurl();

/** Runs grpcurl; resolves its exit code and output (a failed call is an answer here, not an error). */
function grpcurl(bin: string, args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(bin, ['-plaintext', ...args], { timeout: 30_000 }, (e, out, err) =>
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : 1, out, err }),
    );
  });
}

const auth = ['-H', `authorization: Bearer ${ADMIN_KEY}`];
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64');

if ('skipped' in found) {
  it('gRPC API through grpcurl', { skip: found.skipped }, () => {});
} else {
  const bin = found.path;
  describe('gRPC API through grpcurl', { timeout: 120_000 }, () => {
    let t: TestApp;
    let address: string;
    before(async () => {
      t = await startTestApp({ grpc: { port: 0 } });
      address = (await t.app.listen()).grpc;
    });
    after(async () => t?.close());

    it('lists and describes the services by reflection and checks their health', async () => {
      const list = await grpcurl(bin, [address, 'list']);
      assert.equal(list.code, 0, list.err);
      assert.deepEqual(list.out.trim().split('\n').sort(), [
        'cds.v1.DecisionService',
        'cds.v1.SubscriptionService',
        'grpc.health.v1.Health',
        'grpc.reflection.v1.ServerReflection',
      ]);
      const described = await grpcurl(bin, [address, 'describe', 'cds.v1.DecisionService']);
      assert.equal(described.code, 0, described.err);
      for (const rpc of ['Publish', 'PublishStream', 'Get', 'Query'])
        assert.match(described.out, new RegExp(`rpc ${rpc} \\(`), rpc);
      for (const service of ['', 'cds.v1.DecisionService', 'cds.v1.SubscriptionService']) {
        const h = await grpcurl(bin, [
          '-d',
          JSON.stringify({ service }),
          address,
          'grpc.health.v1.Health/Check',
        ]);
        assert.equal(h.code, 0, h.err);
        assert.equal(JSON.parse(h.out).status, 'SERVING', service);
      }
    });

    it('creates a subscription, publishes and reads the decisions on a Subscribe stream', async () => {
      const name = `grpcurl-${process.pid}`;
      const created = await grpcurl(bin, [
        ...auth,
        '-d',
        JSON.stringify({ spec: b64({ name, topics: ['decisions.>'], start: 'earliest' }) }),
        address,
        'cds.v1.SubscriptionService/CreateSubscription',
      ]);
      assert.equal(created.code, 0, created.err);
      const view = JSON.parse(created.out) as { subscription: { json: string } };
      assert.equal(JSON.parse(Buffer.from(view.subscription.json, 'base64').toString()).name, name);

      const batch = [1, 2, 3].map((i) => makeDecision(9100 + i));
      const published = await grpcurl(bin, [
        ...auth,
        '-d',
        JSON.stringify({ decisions: batch.map(b64) }),
        address,
        'cds.v1.DecisionService/Publish',
      ]);
      assert.equal(published.code, 0, published.err);
      const results = (JSON.parse(published.out) as { results: { decisionId: string; position: string }[] })
        .results;
      assert.deepEqual(
        results.map((r) => r.decisionId),
        batch.map((d) => d.decisionId),
      );

      // grpcurl prints each stream message as a JSON object; it is stopped once all three arrived.
      const child = spawn(bin, [
        '-plaintext',
        ...auth,
        '-max-time',
        '30',
        '-d',
        JSON.stringify({ subscription: name, window: 10 }),
        address,
        'cds.v1.SubscriptionService/Subscribe',
      ]);
      let text = '';
      const got = await new Promise<{ position: string; decision: { decisionId: string } }[]>(
        (resolve, reject) => {
          child.stdout.setEncoding('utf8');
          child.stdout.on('data', (chunk: string) => {
            text += chunk;
            const deliveries = [...text.matchAll(/"([A-Za-z0-9+/=]{40,})"/g)].map(
              (m) => JSON.parse(Buffer.from(m[1] as string, 'base64').toString()) as never,
            );
            if (deliveries.length >= batch.length) resolve(deliveries);
          });
          child.on('exit', (code) => reject(new Error(`grpcurl exited ${code} after: ${text}`)));
        },
      );
      child.kill();
      assert.deepEqual(
        got.map((d) => d.decision.decisionId),
        batch.map((d) => d.decisionId),
      );
      assert.deepEqual(
        got.map((d) => d.position),
        results.map((r) => r.position),
      );
    });

    it('shows the status codes and the rich error details decoded', async () => {
      const none = await grpcurl(bin, [
        '-d',
        JSON.stringify({ decisions: [b64(makeDecision(9200))] }),
        address,
        'cds.v1.DecisionService/Publish',
      ]);
      assert.notEqual(none.code, 0);
      assert.match(none.err, /Code: Unauthenticated/);
      assert.match(none.err, /"reason": "UNAUTHENTICATED"/); // google.rpc.ErrorInfo, decoded

      const bad = { ...makeDecision(9201), priority: 42 };
      const invalid = await grpcurl(bin, [
        ...auth,
        '-d',
        JSON.stringify({ decisions: [Buffer.from('not json').toString('base64'), b64(bad)] }),
        address,
        'cds.v1.DecisionService/Publish',
      ]);
      assert.notEqual(invalid.code, 0);
      assert.match(invalid.err, /Code: InvalidArgument/);
      assert.doesNotMatch(invalid.err, /is not recognized/);
      // google.rpc.BadRequest with a field violation naming the item.
      assert.match(invalid.err, /"@type": "type.googleapis.com\/google.rpc.BadRequest"/);
      assert.match(invalid.err, /"field": "\/0"/);
      assert.match(invalid.err, /"reason": "malformed_json"/);
    });
  });
}
