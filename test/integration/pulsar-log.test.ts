// PulsarLog against a real Pulsar standalone broker (one per file): the EventLog contract suite (each
// case on a topic of its own), two writers on one log, orphans of uncommitted batches, and a standard
// Pulsar client (pulsar-client consume, from Maven Central) reading what the cds service published.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { compareMessageIds, PulsarLog, WsPulsarClient, topicName } from '../../src/adapters/pulsar/index.ts';
import {
  decodeChunk,
  readLastCheckpoint,
  readUntil,
  toChunks,
} from '../../src/adapters/pulsar/checkpoint.ts';
import { partitionOfKey } from '../../src/adapters/pulsar/hash.ts';
import { eventLogContract } from '../../src/log/contract.ts';
import { assertRecord, readRange, recordOf } from '../../src/log/contract-helpers.ts';
import type { AppendRecord, Appended } from '../../src/log/port.ts';
import { startTestApp } from '../helpers/app.ts';
import { makeDecision } from '../helpers/decisions.ts';
import { isSkipped, runPulsarTool, startPulsar } from '../helpers/pulsar.ts';
import type { SkippedPulsar, TestPulsar } from '../helpers/pulsar.ts';

let pulsar: TestPulsar | SkippedPulsar = { skipped: 'not started' };
const tenant = `cds-log-${randomUUID().slice(0, 8)}`;
let n = 0;

before(async () => {
  pulsar = await startPulsar();
  if (!isSkipped(pulsar))
    console.log(`[pulsar] broker start: ${pulsar.startMs} ms at ${pulsar.webServiceUrl}`);
});
after(async () => {
  if (!isSkipped(pulsar)) await pulsar.stop();
});

function broker(): TestPulsar {
  if (isSkipped(pulsar)) throw new Error(pulsar.skipped);
  return pulsar;
}

eventLogContract('PulsarLog', async () => {
  const opts = {
    url: broker().webServiceUrl,
    tenant,
    namespace: 'contract',
    topic: `log-${++n}`,
    partitions: 3,
  };
  const log = await PulsarLog.open(opts);
  return { log, reopen: () => PulsarLog.open(opts), cleanup: async () => {} };
});

describe('PulsarLog beyond the contract', { timeout: 240_000 }, () => {
  it('two writers on one log agree on every offset; each keeps its own per-key order', async () => {
    const opts = {
      url: broker().webServiceUrl,
      tenant,
      namespace: 'extra',
      topic: 'two-writers',
      partitions: 3,
    };
    const a = await PulsarLog.open(opts);
    const b = await PulsarLog.open(opts);
    try {
      assert.equal(a.epoch, b.epoch);
      const acked: { rec: AppendRecord; at: Appended; writer: number; seq: number }[] = [];
      await Promise.all(
        [a, b].map(async (log, w) => {
          for (let s = 0; s < 25; s++) {
            const recs = Array.from({ length: 1 + (s % 4) }, (_, i) =>
              recordOf(`k${(s + i) % 5}`, `w${w}-${s}-${i}`),
            );
            const pos = await log.append(recs);
            recs.forEach((rec, i) => acked.push({ rec, at: pos[i]!, writer: w, seq: s * 10 + i }));
          }
        }),
      );
      // Both see the other's records at the same offsets (each has read its own commits back; wait
      // until each has read the other's too).
      const target = a.extents().map((e, p) => Math.max(e.next, b.extents()[p]!.next));
      for (const log of [a, b])
        await Promise.all(target.map((next, p) => (next > 0 ? log.waitFor(p, next - 1) : undefined)));
      assert.deepEqual(a.extents(), b.extents());
      for (const x of acked) {
        assertRecord(await a.readOne(x.at.partition, x.at.offset), x.rec, x.at);
        assertRecord(await b.readOne(x.at.partition, x.at.offset), x.rec, x.at);
      }
      let total = 0;
      for (const e of a.extents()) total += (await readRange(b, e.partition, e.first, e.next)).length;
      assert.equal(total, acked.length, 'nothing more, nothing less');
      for (const w of [0, 1]) {
        const mine = acked.filter((x) => x.writer === w).sort((x, y) => x.seq - y.seq);
        const lastOfKey = new Map<string, number>();
        for (const x of mine) {
          assert.ok((lastOfKey.get(x.rec.key) ?? -1) < x.at.offset, `writer ${w} key ${x.rec.key} order`);
          lastOfKey.set(x.rec.key, x.at.offset);
        }
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('opening reads the commit topic from the last checkpoint, and has exactly the same log', async () => {
    const opts = {
      url: broker().webServiceUrl,
      tenant,
      namespace: 'extra',
      topic: 'checkpointed',
      partitions: 3,
      checkpointEvery: 10,
      checkpointChunkRuns: 3, // several chunks per checkpoint
    };
    const a = await PulsarLog.open(opts);
    const client = new WsPulsarClient(broker().webServiceUrl);
    const opened: PulsarLog[] = [];
    const same = async (log: PulsarLog) => {
      assert.equal(log.epoch, a.epoch);
      assert.deepEqual(log.extents(), a.extents());
      for (const e of a.extents()) {
        const want = await readRange(a, e.partition, e.first, e.next);
        const got = await readRange(log, e.partition, e.first, e.next);
        assert.equal(got.length, e.next - e.first);
        assert.deepEqual(
          got.map((r) => [r.offset, r.key, Buffer.from(r.payload).toString('hex')]),
          want.map((r) => [r.offset, r.key, Buffer.from(r.payload).toString('hex')]),
        );
      }
    };
    try {
      for (let g = 0; g < 45; g++) {
        await a.append(
          Array.from({ length: 1 + (g % 3) }, (_, i) => recordOf(`k${(g + i) % 7}`, `g${g}-${i}`)),
        );
        if (g === 15) await a.trim(a.partitionOf('k1'), 2);
      }
      await a.whenCheckpointed(); // the 4th checkpoint, after commit 40
      const last = await client.admin.lastMessageId(a.topics.checkpoints);
      assert.ok(last !== undefined, 'checkpoints were written');
      const b = await PulsarLog.open(opts);
      opened.push(b);
      // From the start it is 45 commits, a trim and up to 4 checkpointed records; from the checkpoint
      // of commit 40 it is the 5 commits after it and the checkpointed records written after it (of
      // that checkpoint, and of the previous one when it was slower than 10 appends).
      assert.ok(b.opened.checkpoint !== undefined, 'opened from a checkpoint');
      assert.ok(b.opened.commitRecordsRead <= 7, `read ${b.opened.commitRecordsRead} commit records`);
      await same(b);
      console.log(`[checkpoint] opened from a checkpoint: ${b.opened.commitRecordsRead} commit records read`);
      // The commit topic is kept from the previous complete checkpoint (of commit 30) only: cds-trim's
      // backlog there is the 15 commits since and a few checkpointed records, not all 45 and the trim.
      const stats = (await (
        await fetch(
          `${broker().webServiceUrl}/admin/v2/persistent/${tenant}/extra/checkpointed.commits/stats`,
        )
      ).json()) as { subscriptions: Record<string, { msgBacklog: number }> };
      const backlog = stats.subscriptions['cds-trim']?.msgBacklog ?? -1;
      assert.ok(backlog >= 15 && backlog <= 20, `cds-trim backlog on the commit topic: ${backlog}`);
      // The log opened from a checkpoint keeps numbering with everyone (and skips repeated commits).
      const [x] = await b.append([recordOf('k3', 'from-b')]);
      await a.waitFor(x!.partition, x!.offset);
      assertRecord(await a.readOne(x!.partition, x!.offset), recordOf('k3', 'from-b'), x!);
      // A writer that died half-way through a checkpoint: the topic ends with an incomplete one,
      // whose `prev` names the last complete one; opening uses that.
      const cp = await readLastCheckpoint(client, a.topics.checkpoints);
      assert.ok(cp !== undefined);
      const producer = client.producer(a.topics.checkpoints, { batching: false });
      await producer.whenConnected();
      const torn = { ...toChunks({ ...cp.state, parts: [] }, 'torn', cp.start, 1)[0]!, n: 2 };
      await producer.send({ payload: Buffer.from(JSON.stringify(torn)) });
      await producer.close();
      const c = await PulsarLog.open(opts);
      opened.push(c);
      assert.deepEqual(c.opened.checkpoint, cp.state.upTo);
      await c.waitFor(x!.partition, x!.offset);
      await same(c);
    } finally {
      for (const log of opened) await log.close();
      await client.close();
      await a.close();
    }
  });

  it('with two writers each checkpoint point is written once (by the writer of its commit only)', async () => {
    const opts = {
      url: broker().webServiceUrl,
      tenant,
      namespace: 'extra',
      topic: 'checkpointed-twice',
      partitions: 2,
      checkpointEvery: 4,
    };
    const a = await PulsarLog.open(opts);
    const b = await PulsarLog.open(opts);
    const client = new WsPulsarClient(broker().webServiceUrl);
    try {
      await Promise.all(
        [a, b].map(async (log, w) => {
          for (let s = 0; s < 16; s++) await log.append([recordOf(`k${s % 5}`, `w${w}-${s}`)]);
        }),
      );
      await Promise.all([a.whenCheckpointed(), b.whenCheckpointed()]);
      const last = await client.admin.lastMessageId(a.topics.checkpoints);
      assert.ok(last !== undefined);
      const upTo = new Map<string, string>();
      await readUntil(client, a.topics.checkpoints, 'earliest', last, (id, payload) => {
        const c = decodeChunk(payload);
        if (c !== undefined) upTo.set(c.id, c.upTo.join(':'));
        return compareMessageIds(id, last) >= 0;
      });
      // 32 appends (some coalesced into one commit) make at least 4 points of 4 commits.
      assert.ok(upTo.size >= 4, `${upTo.size} checkpoints`);
      assert.equal(new Set(upTo.values()).size, upTo.size, 'no point checkpointed twice');
      const target = a.extents().map((e, p) => Math.max(e.next, b.extents()[p]!.next));
      const c = await PulsarLog.open(opts);
      try {
        for (const log of [a, b, c])
          await Promise.all(target.map((next, p) => (next > 0 ? log.waitFor(p, next - 1) : undefined)));
        assert.ok(c.opened.checkpoint !== undefined);
        assert.deepEqual(c.extents(), a.extents());
        assert.deepEqual(b.extents(), a.extents());
      } finally {
        await c.close();
      }
    } finally {
      await client.close();
      await a.close();
      await b.close();
    }
  });

  it('a decision message without its commit (a failed batch) is never read', async () => {
    const opts = { url: broker().webServiceUrl, tenant, namespace: 'extra', topic: 'orphans', partitions: 2 };
    const log = await PulsarLog.open(opts);
    const client = new WsPulsarClient(broker().webServiceUrl);
    try {
      const p = log.partitionOf('orphan');
      const before = log.extents();
      const producer = client.producer(topicName(tenant, 'extra', 'orphans', p));
      await producer.whenConnected();
      await producer.send({
        payload: Buffer.from('{"orphan":true}'),
        key: 'orphan',
        properties: { 'cds.batch': 'x:1' },
      });
      const [at] = await log.append([recordOf('orphan', 'after-orphan')]);
      assert.equal(at!.offset, before[p]!.next, 'the orphan took no offset');
      assertRecord(await log.readOne(p, at!.offset), recordOf('orphan', 'after-orphan'), at!);
      const again = await PulsarLog.open(opts);
      try {
        assert.deepEqual(again.extents(), log.extents());
      } finally {
        await again.close();
      }
    } finally {
      await client.close();
      await log.close();
    }
  });

  it('pinRetention keeps a durable subscription per partition at the lowest message still needed', async () => {
    const opts = { url: broker().webServiceUrl, tenant, namespace: 'extra', topic: 'pinned', partitions: 2 };
    const log = await PulsarLog.open(opts);
    const client = new WsPulsarClient(broker().webServiceUrl);
    try {
      const pos = await log.append(Array.from({ length: 20 }, (_, i) => recordOf(`p${i % 4}`, `pin-${i}`)));
      const offsets = log.extents().map((e) => e.next - 2);
      await log.pinRetention('cds-cursors', offsets);
      for (const p of [0, 1]) {
        const topic = log.topics.partitions[p]!;
        assert.ok((await client.admin.subscriptions(topic)).includes('cds-cursors'));
        const id = log.messageIdAt(p, offsets[p]!);
        assert.ok(id !== undefined && pos.some((x) => x.partition === p));
      }
      await log.pinRetention(
        'cds-cursors',
        log.extents().map((e) => e.next),
      ); // at the tail: unchanged
    } finally {
      await client.close();
      await log.close();
    }
  });

  it('partitions follow Pulsar key routing (Murmur3_32Hash)', async () => {
    const client = new WsPulsarClient(broker().webServiceUrl);
    const topic = topicName(tenant, 'extra', 'routing');
    try {
      await client.admin.ensureNamespace(`${tenant}/extra`);
      await client.admin.createPartitionedTopic(topic, 5);
      const url = `${broker().webServiceUrl.replace(/^http/, 'ws')}/ws/v2/producer/persistent/${tenant}/extra/routing?hashingScheme=Murmur3_32Hash&batchingEnabled=false`;
      const { default: WebSocket } = await import('ws');
      const ws = new WebSocket(url);
      await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
      const keys = Array.from({ length: 40 }, (_, i) => `pf-${i}-é🔑`);
      const acks = new Map<string, string>();
      ws.on('message', (d) => {
        const f = JSON.parse(d.toString()) as { context: string; messageId: string };
        acks.set(f.context, f.messageId);
      });
      keys.forEach((key, i) => ws.send(JSON.stringify({ payload: 'eA==', key, context: String(i) })));
      while (acks.size < keys.length) await new Promise((r) => setTimeout(r, 20));
      ws.close();
      const { decodeMessageId } = await import('../../src/adapters/pulsar/message-id.ts');
      keys.forEach((key, i) =>
        assert.equal(decodeMessageId(acks.get(String(i))!).partition, partitionOfKey(key, 5), key),
      );
    } finally {
      await client.close();
    }
  });

  it('pulsar-client (Maven Central) reads the decisions cds published, with their properties', async () => {
    const t = await startTestApp({
      log: { engine: 'pulsar' },
      pulsar: {
        url: broker().webServiceUrl,
        tenant,
        namespace: 'interop',
        topic: 'decisions',
        partitions: 3,
      },
    });
    const decisions = Array.from({ length: 12 }, (_, i) => makeDecision(9000 + i, { priority: i % 10 }));
    try {
      const r = await t.request('POST', '/v1/decisions', { body: decisions });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const got = await t.request('GET', `/v1/decisions/${decisions[3]!.decisionId}`);
      assert.equal(got.status, 200);
      assert.equal(got.body.decision.decisionId, decisions[3]!.decisionId);
    } finally {
      await t.close();
    }
    const out = await runPulsarTool(broker(), 'org.apache.pulsar.client.cli.PulsarClientTool', [
      'consume',
      '-s',
      'another-team',
      '-p',
      'Earliest',
      '-n',
      String(decisions.length),
      '-mp',
      topicName(tenant, 'interop', 'decisions'),
    ]);
    assert.equal(out.code, 0, out.stderr.slice(-2000));
    const messages = out.stdout.split('----- got message -----').slice(1);
    assert.equal(messages.length, decisions.length, out.stdout.slice(0, 2000));
    const seen = new Set<string>();
    for (const m of messages) {
      const props = Object.fromEntries(
        (/properties:\[(.*?)\], content:/s.exec(m)?.[1] ?? '').split(', ').map((kv) => {
          const i = kv.indexOf('=');
          return [kv.slice(0, i), kv.slice(i + 1)];
        }),
      );
      const content = /content:(\{.*\}), event-time:/s.exec(m)?.[1] ?? '';
      const body = JSON.parse(content) as {
        decisionId: string;
        revision: number;
        portfolioId: string;
        priority: number;
      };
      const want = decisions.find((d) => d.decisionId === body.decisionId);
      assert.ok(want, `unknown decision ${body.decisionId}`);
      assert.deepEqual(body, want, 'the payload is the decision as published');
      assert.equal(props.decisionId, want.decisionId);
      assert.equal(props.revision, String(want.revision));
      assert.equal(props.key, want.portfolioId);
      assert.equal(props.priority, String(want.priority));
      assert.match(props.topics ?? '', /^decisions\.equity\.pf-/);
      assert.match(m, new RegExp(`key:\\[${want.portfolioId}\\]`));
      seen.add(body.decisionId);
    }
    assert.equal(seen.size, decisions.length);
  });
});
