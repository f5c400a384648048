// A Pulsar broker restart under load (its own broker, durable journal): appends that were
// acknowledged are all there afterwards, at their positions; appends that were refused meanwhile
// (STORAGE_UNAVAILABLE, retriable) left nothing behind; the log's readers and producers reconnect by
// themselves and appending works again without reopening the log.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { launchPulsar, PulsarUnavailableError } from '../../scripts/pulsar/launcher.ts';
import type { PulsarBroker } from '../../scripts/pulsar/launcher.ts';
import { PulsarLog } from '../../src/adapters/pulsar/index.ts';
import { isCdsError } from '../../src/errors/index.ts';
import { assertRecord, readRange, recordOf } from '../../src/log/contract-helpers.ts';
import type { AppendRecord, Appended } from '../../src/log/port.ts';
import { startTestApp } from '../helpers/app.ts';
import { makeDecision } from '../helpers/decisions.ts';

const WRITERS = 8;

describe('PulsarLog across a broker restart', { timeout: 600_000 }, () => {
  let broker: PulsarBroker | undefined;
  after(async () => {
    await broker?.stop();
  });

  it('loses no acknowledged append, keeps nothing of a refused one, and resumes by itself', async (t) => {
    try {
      broker = await launchPulsar({ journalSyncData: true, log: (m) => console.error(`[pulsar] ${m}`) });
    } catch (e) {
      if (e instanceof PulsarUnavailableError && !process.env.CI) return t.skip(e.message);
      throw e;
    }
    const opts = {
      url: broker.webServiceUrl,
      tenant: `cds-restart-${randomUUID().slice(0, 8)}`,
      namespace: 'load',
      topic: 'decisions',
      partitions: 3,
      closeTimeoutMs: 60_000,
    };
    const log = await PulsarLog.open(opts);
    // The service on the same broker (its own topic), to see what a publisher gets meanwhile.
    const app = await startTestApp({
      log: { engine: 'pulsar' },
      pulsar: { url: broker.webServiceUrl, tenant: opts.tenant, namespace: 'service', topic: 'decisions' },
    });
    const acked: { rec: AppendRecord; at: Appended }[] = [];
    const refused = new Set<string>();
    const other: unknown[] = [];
    let stop = false;
    let seq = 0;
    const load = Array.from({ length: WRITERS }, async (_, w) => {
      while (!stop) {
        const recs = Array.from({ length: 1 + (seq % 3) }, (_, i) =>
          recordOf(`k${(w + i) % 6}`, `w${w}-${seq++}`),
        );
        try {
          const pos = await log.append(recs);
          recs.forEach((rec, i) => acked.push({ rec, at: pos[i]! }));
        } catch (e) {
          if (isCdsError(e, 'STORAGE_UNAVAILABLE')) {
            assert.equal(e.spec.retriable, true);
            for (const r of recs) refused.add(r.headers.id as string);
            await new Promise((r) => setTimeout(r, 50));
          } else other.push(e);
        }
      }
    });
    const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await wait(3000);
    const before = acked.length;
    const t0 = performance.now();
    await broker.stop({ keepData: true, kill: true });
    // While the broker is away a publish through the service is refused, retriable, with Retry-After.
    await wait(500);
    const during = await app.request('POST', '/v1/decisions', { body: makeDecision(77) });
    assert.equal(during.status, 503, JSON.stringify(during.body));
    assert.equal(during.body.error.code, 'STORAGE_UNAVAILABLE');
    assert.equal(during.body.error.retriable, true);
    assert.ok(Number(during.headers['retry-after']) >= 1, 'Retry-After');
    const { dataDir, webPort, brokerPort } = broker;
    broker = await launchPulsar({ journalSyncData: true, reuse: { dataDir, webPort, brokerPort } });
    console.log(`[pulsar] broker killed and restarted in ${Math.round(performance.now() - t0)} ms`);
    // The same publish succeeds once the service's producers have reconnected by themselves.
    let status = 0;
    for (const until = Date.now() + 120_000; status !== 200 && Date.now() < until; await wait(250))
      status = (await app.request('POST', '/v1/decisions', { body: makeDecision(77) })).status;
    assert.equal(status, 200, 'publishing works again after the restart');
    await app.close();
    // Appending works again by itself (producers reconnect), without reopening the log.
    const deadline = Date.now() + 120_000;
    while (acked.length < before + 200 && Date.now() < deadline) await wait(250);
    stop = true;
    await Promise.all(load);
    console.log(
      `[pulsar] acked ${acked.length} records (${before} before the restart), refused ${refused.size}`,
    );
    assert.deepEqual(other, [], 'only retriable STORAGE_UNAVAILABLE refusals');
    assert.ok(
      acked.length >= before + 200,
      `appends resumed after the restart (${acked.length - before} since)`,
    );
    assert.ok(refused.size > 0 || acked.length > before, 'the load ran through the restart');

    const check = async (l: PulsarLog) => {
      for (const x of acked) assertRecord(await l.readOne(x.at.partition, x.at.offset), x.rec, x.at);
      const ids = new Set<string>();
      for (const e of l.extents())
        for (const r of await readRange(l, e.partition, e.first, e.next)) ids.add(r.headers.id as string);
      assert.equal(ids.size, acked.length, 'the log holds exactly the acknowledged records');
      for (const id of refused) assert.ok(!ids.has(id), `refused ${id} is not in the log`);
    };
    await check(log);
    await log.close();
    const again = await PulsarLog.open(opts);
    try {
      await check(again);
    } finally {
      await again.close();
    }
  });
});
