/**
 * A backup taken while publishers and a WebSocket subscriber run (issue 6 item 5; ADR 0014): once
 * restored, the log is a consistent prefix (every offset from first to the backup's extent, no
 * hole), every decision acknowledged before the backup started is there at its position, the
 * durable subscription came back, and clients see the new epoch: the WebSocket subscriber that
 * reconnects reports epochChanged and gets deliveries of the new epoch, and so does the gRPC
 * subscriber; positions of the old epoch
 * are refused (seek 409, WebSocket ack, gRPC resume FAILED_PRECONDITION).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Subscriber, type Delivery, type SubscriberEvent } from '../../src/client/index.ts';
import { GrpcSubscriber, type GrpcSubscriberEvent } from '../../src/client/grpc.ts';
import type { Manifest } from '../../src/backup/index.ts';
import { runCds } from '../helpers/cli.ts';
import { createDecisionGenerator, testSeed } from '../helpers/decisions.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import { startPublishers, type PublishRecord } from '../crash/load.ts';
import { nextEvent } from '../model/harness.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function nextGrpc(
  it: AsyncIterator<GrpcSubscriberEvent>,
  type: GrpcSubscriberEvent['type'],
  ms = 10_000,
): Promise<GrpcSubscriberEvent> {
  const end = Date.now() + ms;
  for (;;) {
    const left = end - Date.now();
    if (left <= 0) throw new Error(`no ${type} event within ${ms} ms`);
    const r = await Promise.race([it.next(), sleep(left).then(() => undefined)]);
    if (r === undefined || r.done === true) throw new Error(`no ${type} event`);
    if (r.value.type === type) return r.value;
  }
}

test(
  'a backup under load restores as a consistent prefix; subscribers see the new epoch',
  { timeout: 120_000 },
  async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'cds-backup-load-'));
    const backupDir = join(root, 'backup');
    const restoredDir = join(root, 'restored');
    let app: TestApp | undefined = await startTestApp({ grpc: { port: 0 } });
    const addr = await app.app.listen();
    const url = addr.http;
    const httpPort = Number(new URL(url).port);
    const grpcPort = Number(addr.grpc.split(':')[1]);
    const oldEpoch = app.app.ctx.log.epoch;
    const name = 'backup-load';
    const created = await app.request('POST', '/v1/subscriptions', {
      body: { name, topics: ['decisions.>'], start: 'earliest', includeExpired: true },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));

    // A subscriber that acknowledges everything it gets, for the whole test (it reconnects by itself).
    const sub = new Subscriber({
      url,
      apiKey: ADMIN_KEY,
      subscription: name,
      credits: 500,
      reconnect: { minMs: 50, maxMs: 200 },
    });
    const seen: SubscriberEvent[] = [];
    let consuming = true;
    const consumer = (async () => {
      while (consuming) {
        const e = await sub.next(200);
        if (e === undefined) continue;
        seen.push(e);
        if (e.type === 'deliveries') void sub.ack(e.deliveries.map((d) => d.position));
      }
    })();
    let grpc: GrpcSubscriber | undefined;
    // A gRPC consumer without credits: it only watches the epoch across the restore.
    const watcher = new GrpcSubscriber({
      address: `127.0.0.1:${grpcPort}`,
      token: ADMIN_KEY,
      subscription: name,
      credits: 0,
      backoff: { initialMs: 50, maxMs: 300 },
    });
    const watched = watcher[Symbol.asyncIterator]();
    try {
      await nextGrpc(watched, 'subscribed');
      const gen = createDecisionGenerator({ seed: testSeed('backup-load'), idPrefix: 'bl', portfolios: 30 });
      const pubs = startPublishers({
        url,
        key: ADMIN_KEY,
        gen,
        concurrency: 24,
        batchShare: 0.3,
        maxBatch: 8,
      });
      // Under way: some hundreds acknowledged (however slow the machine), then the backup.
      const ackedSoFar = () => pubs.records.filter((r) => r.outcome.kind === 'acked').length;
      for (const end = Date.now() + 30_000; ackedSoFar() < 300 && Date.now() < end;) await sleep(50);
      const backupStartedAt = pubs.elapsed();
      const backup = await runCds('backup', '--to', backupDir, '--url', url, '--key', ADMIN_KEY);
      const backupEndedAt = pubs.elapsed();
      assert.equal(backup.code, 0, backup.err);
      await sleep(300);
      const records = await pubs.stop();
      const manifest = JSON.parse(readFileSync(join(backupDir, 'manifest.json'), 'utf8')) as Manifest;
      const extent = manifest.extents[0] as { first: number; next: number };

      const acked = (r: PublishRecord) => (r.outcome.kind === 'acked' ? r.outcome.acks : []);
      const before = records.filter((r) => r.endedAt < backupStartedAt).flatMap(acked);
      const byFinish = records.filter((r) => r.endedAt <= backupEndedAt).flatMap(acked);
      const offsetOf = (p: string) => Number(p.split(':')[1]);
      assert.ok(before.length > 100, `only ${before.length} publishes acknowledged before the backup`);
      const lost = byFinish.filter((a) => offsetOf(a.position) >= extent.next).length;
      t.diagnostic(
        `backup of ${manifest.bytes} bytes in ${Date.parse(manifest.finishedAt) - Date.parse(manifest.startedAt)} ms, ` +
          `${manifest.logPasses} log passes; extent ${extent.first}..${extent.next}; the log held ${manifest.sourceNextAtFinish} ` +
          `when it finished (${Date.parse(manifest.finishedAt) - Date.parse(manifest.extentTakenAt)} ms after the extent was taken); ` +
          `publishes acknowledged before it started ${before.length}, by the CLI's return ${byFinish.length} (${lost} not in it)`,
      );
      assert.ok(manifest.sourceNextAtFinish >= extent.next);

      // The old service goes away; the backup is restored into a new directory and started on the same ports.
      await app.close({ keep: true });
      app = undefined;
      const restore = await runCds('restore', '--from', backupDir, '--data-dir', restoredDir);
      assert.equal(restore.code, 0, restore.err);
      app = await startTestApp({ http: { port: httpPort }, grpc: { port: grpcPort } }, restoredDir);
      await app.app.listen();
      const log = app.app.ctx.log;
      const newEpoch = log.epoch;
      assert.notEqual(newEpoch, oldEpoch);
      assert.deepEqual(log.extents(), [{ partition: 0, first: extent.first, next: extent.next }]);

      // No hole: every offset from first to the extent, in order, each a decision the publishers sent.
      const sent = new Map(records.flatMap((r) => r.decisions.map((d) => [d.decisionId, d] as const)));
      const idAt = new Map<number, string>();
      for (let off = extent.first; off < extent.next;) {
        const batch = await log.read(0, off, 2000);
        assert.ok(batch.length > 0, `nothing at offset ${off}`);
        for (const r of batch) {
          assert.equal(r.offset, off, 'a hole in the restored log');
          const id = (JSON.parse(Buffer.from(r.payload).toString('utf8')) as { decisionId: string })
            .decisionId;
          assert.ok(sent.has(id), `offset ${off} holds ${id}, never sent`);
          idAt.set(off, id);
          off++;
        }
      }
      for (const a of before)
        assert.equal(
          idAt.get(offsetOf(a.position)),
          a.decisionId,
          `${a.decisionId} acknowledged before the backup`,
        );
      const q = await app.request('GET', `/v1/decisions/${before[0]?.decisionId}`);
      assert.equal(q.status, 200);
      assert.equal(q.body.epoch, newEpoch);
      assert.equal(q.body.position, before[0]?.position, 'positions keep their offsets');

      // The durable subscription came back; the reconnecting subscriber sees the new epoch.
      assert.equal((await app.request('GET', `/v1/subscriptions/${name}`)).status, 200);
      consuming = false;
      await consumer;
      // The consumer loop may have taken the reconnection's events already: look there first.
      const at = seen.findIndex((e) => e.type === 'epochChanged');
      const skipped: SubscriberEvent[] = at >= 0 ? seen.slice(at + 1) : [];
      const changed = at >= 0 ? seen[at] : await nextEvent(sub, 'epochChanged', 20_000, skipped);
      assert.deepEqual(changed, { type: 'epochChanged', previous: oldEpoch, epoch: newEpoch });
      const connected =
        skipped.find((e) => e.type === 'connected') ?? (await nextEvent(sub, 'connected', 5000, skipped));
      assert.ok(connected.type === 'connected' && connected.epoch === newEpoch);
      assert.equal(sub.epoch, newEpoch);
      const fresh = await app.request('POST', '/v1/decisions', { body: gen.take(3) });
      assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
      assert.equal(fresh.body.results[0].position, `0:${extent.next}`, 'appends continue from the extent');
      const got: Delivery[] = [];
      for (const e of skipped) if (e.type === 'deliveries') got.push(...e.deliveries);
      while (!got.some((d) => d.position === `0:${extent.next}`)) {
        const e = await nextEvent(sub, 'deliveries', 10_000);
        got.push(...e.deliveries);
        void sub.ack(e.deliveries.map((d) => d.position));
      }
      for (const d of got) assert.equal(d.epoch, newEpoch, 'a delivery of the old epoch after the restore');
      assert.deepEqual(await nextGrpc(watched, 'epochChanged', 20_000), {
        type: 'epochChanged',
        previous: oldEpoch,
        epoch: newEpoch,
      });

      // Positions of the old epoch are refused, by every way a client names them.
      const seek = await app.request('POST', `/v1/subscriptions/${name}/seek`, {
        body: { to: { position: `0:${extent.first}`, epoch: oldEpoch } },
      });
      assert.equal(seek.status, 409);
      assert.equal(seek.body.error.code, 'EPOCH_MISMATCH');
      const okSeek = await app.request('POST', `/v1/subscriptions/${name}/seek`, {
        body: { to: { position: `0:${extent.next}`, epoch: newEpoch } },
      });
      assert.equal(okSeek.status, 200, JSON.stringify(okSeek.body));
      const acks = await sub.ack([`0:${extent.next}`], { epoch: oldEpoch, credit: false });
      assert.deepEqual(
        acks.map((a) => a.code),
        ['EPOCH_MISMATCH'],
      );
      grpc = new GrpcSubscriber({
        address: `127.0.0.1:${grpcPort}`,
        token: ADMIN_KEY,
        subscription: name,
        resume: { positions: [`0:${extent.first}`], epoch: oldEpoch },
      });
      // The session answers its subscribe with the error (the stream stays open, unsubscribed).
      const refused = await nextGrpc(grpc[Symbol.asyncIterator](), 'error');
      assert.ok(refused.type === 'error' && refused.error.code === 'EPOCH_MISMATCH', JSON.stringify(refused));
      assert.equal(refused.type === 'error' && refused.error.grpcCode, 9); // FAILED_PRECONDITION
    } finally {
      consuming = false;
      sub.close();
      grpc?.close();
      watcher.close();
      await consumer;
      await app?.close({ keep: true });
      rmSync(root, { recursive: true, force: true });
    }
  },
);
