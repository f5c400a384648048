/**
 * Server heartbeats: every stream gets one each interval, unsolicited, with its statistics
 * (a second gRPC server on the same services with a 100 ms interval keeps the test short).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bearer, connect } from '../../src/client/grpc.ts';
import { buildGrpcServer } from '../../src/transports/grpc/index.ts';
import type { PublishStreamResponse } from '../../src/transports/grpc/gen/cds/v1/decisions.ts';
import type { SessionResponse } from '../../src/transports/grpc/gen/cds/v1/subscriptions.ts';
import { ADMIN_KEY, startTestApp } from '../helpers/app.ts';

describe('gRPC server heartbeats', { timeout: 60_000 }, () => {
  it('arrive on Session and PublishStream with growing stream age', async () => {
    const t = await startTestApp();
    const server = buildGrpcServer(t.app.ctx, { heartbeatMs: 100 });
    const client = connect(await server.listen('127.0.0.1', 0));
    try {
      const name = `grpc-hb-${process.pid}`;
      assert.equal(
        (await t.request('POST', '/v1/subscriptions', { body: { name, topics: ['decisions.>'] } })).status,
        201,
      );
      const session = client.subscriptions.session(bearer(ADMIN_KEY));
      const fromSession: SessionResponse[] = [];
      session.on('data', (m: SessionResponse) => fromSession.push(m));
      session.on('error', () => undefined);
      session.write({
        id: 1,
        subscribe: { subscription: name, credits: 5, resume: Buffer.alloc(0) },
        ack: undefined,
        nack: undefined,
        credits: undefined,
        update: undefined,
        heartbeat: undefined,
      });
      const pub = client.decisions.publishStream(bearer(ADMIN_KEY));
      const fromPublish: PublishStreamResponse[] = [];
      pub.on('data', (m: PublishStreamResponse) => fromPublish.push(m));
      pub.on('error', () => undefined);
      const deadline = Date.now() + 5000;
      const beats = () => [
        fromSession.filter((m) => m.heartbeat !== undefined && m.id === 0),
        fromPublish.filter((m) => m.heartbeat !== undefined),
      ];
      while (beats().some((b) => b.length < 3) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const [s, p] = beats();
      assert.ok(s!.length >= 3 && p!.length >= 3, `session ${s!.length}, publish ${p!.length}`);
      const ages = s!.map((m) => m.heartbeat!.stats!.ageMs);
      assert.ok(ages[2]! > ages[0]!, JSON.stringify(ages));
      assert.equal(s![0]!.heartbeat!.stats!.messagesIn, 1);
      assert.equal(s![0]!.heartbeat!.stats!.credits, 5);
      session.cancel();
      pub.cancel();
    } finally {
      client.close();
      await server.close();
      await t.close();
    }
  });
});
