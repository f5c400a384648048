/**
 * PublishStream answers each batch in order (positions, or the errors of a refused batch, the
 * stream going on) and heartbeats with statistics; at shutdown health turns NOT_SERVING and open
 * streams end with UNAVAILABLE / SHUTTING_DOWN (retry elsewhere).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { bearer, connect, errorDetails } from '../../src/client/grpc.ts';
import type { PublishStreamResponse } from '../../src/transports/grpc/gen/cds/v1/decisions.ts';
import {
  HealthCheckResponse_ServingStatus as Serving,
  HealthClient,
} from '../../src/transports/grpc/gen/grpc/health/v1/health.ts';
import { ADMIN_KEY, startTestApp } from '../helpers/app.ts';
import { makeDecision } from '../helpers/decisions.ts';

describe('gRPC PublishStream and shutdown', { timeout: 90_000 }, () => {
  it('answers batches in order, then ends streams and health at shutdown', async () => {
    const t = await startTestApp({ grpc: { port: 0 } });
    const address = (await t.app.listen()).grpc;
    const client = connect(address);
    const health = new HealthClient(address, grpc.credentials.createInsecure());
    try {
      const stream = client.decisions.publishStream(bearer(ADMIN_KEY));
      const answers: PublishStreamResponse[] = [];
      stream.on('data', (m: PublishStreamResponse) => answers.push(m));
      const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
      const enc = (i: number) => Buffer.from(JSON.stringify(makeDecision(i)));
      const N = 20;
      for (let b = 1; b <= N; b++) {
        const decisions = b === 7 ? [enc(700), Buffer.from('not json')] : [enc(b * 10), enc(b * 10 + 1)];
        stream.write({ batch: { batchId: b, decisions }, heartbeat: undefined });
      }
      stream.write({ batch: undefined, heartbeat: { atMs: Date.now(), stats: undefined } });
      const deadline = Date.now() + 10_000;
      while (answers.length < N + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const results = answers.filter((a) => a.result !== undefined).map((a) => a.result!);
      assert.deepEqual(
        results.map((r) => r.batchId),
        Array.from({ length: N }, (_, i) => i + 1),
      );
      assert.equal(results[6]?.error?.code, 'MALFORMED_JSON');
      assert.equal(results[6]?.error?.fieldErrors[0]?.path, '/1');
      assert.equal(results[7]?.results.length, 2);
      const hb = answers.find((a) => a.heartbeat !== undefined)?.heartbeat;
      assert.equal(hb?.stats?.errors, 1);
      assert.equal(hb?.stats?.itemsOut, (N - 1) * 2);

      const check = (service: string) =>
        new Promise<Serving>((resolve, reject) =>
          health.check({ service }, (e, r) => (e ? reject(e) : resolve(r.status))),
        );
      assert.equal(await check('cds.v1.DecisionService'), Serving.SERVING);
      const statuses: Serving[] = [];
      const watch = health.watch({ service: 'cds.v1.SubscriptionService' });
      watch.on('data', (r: { status: Serving }) => statuses.push(r.status));
      watch.on('error', () => undefined);
      while (statuses.length === 0) await new Promise((r) => setTimeout(r, 10));

      await t.close();
      const e = await ended;
      assert.equal(e.code, grpc.status.UNAVAILABLE);
      const d = errorDetails(e);
      assert.equal(d.code, 'SHUTTING_DOWN');
      assert.equal(d.retryDelayMs, 1000);
      assert.deepEqual(statuses.slice(0, 2), [Serving.SERVING, Serving.NOT_SERVING]);
    } finally {
      client.close();
      health.close();
      await t.close(); // a second close is a no-op
    }
  });
});
