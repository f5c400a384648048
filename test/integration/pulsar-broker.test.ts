// Checks, against a real Apache Pulsar standalone broker, the parts of Pulsar that the cluster-mode
// EventLog adapter relies on: the admin REST API, and the WebSocket producer, consumer and reader on a
// partitioned topic (keys, properties, acks, per-key order).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { isSkipped, startPulsar } from '../helpers/pulsar.ts';
import type { SkippedPulsar, TestPulsar } from '../helpers/pulsar.ts';

const MESSAGES = 100;
const KEYS = 10;
const PARTITIONS = 3;

/** One WebSocket session whose incoming JSON frames are read in order with a timeout. */
class Session {
  private readonly queue: unknown[] = [];
  private waiter: ((v: unknown) => void) | undefined;
  private closed: string | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame: unknown = JSON.parse(data.toString());
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(frame);
      } else this.queue.push(frame);
    });
    ws.on('close', (code, reason) => {
      this.closed = `closed ${code} ${reason.toString()}`;
    });
  }

  static async open(url: string): Promise<Session> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`${url}: HTTP ${res.statusCode}`)));
    });
    return new Session(ws);
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }

  async next(timeoutMs = 15_000): Promise<Record<string, unknown>> {
    const queued = this.queue.shift();
    if (queued !== undefined) return queued as Record<string, unknown>;
    if (this.closed) throw new Error(`session ${this.closed}`);
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no frame within ${timeoutMs} ms (${this.closed ?? 'open'})`));
      }, timeoutMs);
      this.waiter = (v) => {
        clearTimeout(timer);
        resolve(v as Record<string, unknown>);
      };
    });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

/** The partition index inside a base64 MessageIdData (protobuf field 3; -1 when not partitioned). */
function partitionOf(messageId: string): number {
  const bytes = Buffer.from(messageId, 'base64');
  let i = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; i < bytes.length; shift += 7n) {
      const b = bytes[i++] ?? 0;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
    }
    return result;
  };
  while (i < bytes.length) {
    const tag = Number(varint());
    const field = tag >> 3;
    const wire = tag & 7;
    if (wire === 0) {
      const v = varint();
      if (field === 3) return Number(BigInt.asIntN(32, v));
    } else if (wire === 2) i += Number(varint());
    else throw new Error(`unexpected wire type ${wire} in message id`);
  }
  return -1;
}

const payloadOf = (seq: number): { seq: number; key: string; body: string } => ({
  seq,
  key: `key-${seq % KEYS}`,
  body: `decision ${seq} ${'x'.repeat(seq)}`,
});

describe('Pulsar standalone broker', { timeout: 300_000 }, () => {
  let pulsar: TestPulsar | SkippedPulsar = { skipped: 'not started' };
  const tenant = `cds-it-${randomUUID().slice(0, 8)}`;
  const namespace = 'events';
  const topic = 'decisions';
  const topicPath = `persistent/${tenant}/${namespace}/${topic}`;
  const sentPartition = new Map<number, number>();

  const admin = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    assert.ok(!isSkipped(pulsar));
    const res = await fetch(`${pulsar.webServiceUrl}/admin/v2/${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    assert.ok(res.ok, `${method} ${path}: HTTP ${res.status} ${text}`);
    return text ? (JSON.parse(text) as unknown) : undefined;
  };
  const wsUrl = (path: string): string => {
    assert.ok(!isSkipped(pulsar));
    return `${pulsar.webServiceUrl.replace(/^http/, 'ws')}/ws/v2/${path}`;
  };

  before(async () => {
    const started = performance.now();
    pulsar = await startPulsar();
    if (isSkipped(pulsar)) {
      console.log(`[pulsar] skipping: ${pulsar.skipped}`);
      return;
    }
    const total = Math.round(performance.now() - started);
    console.log(
      `[pulsar] broker start: ${pulsar.startMs} ms (with resolution: ${total} ms) at ${pulsar.webServiceUrl}`,
    );
  });

  after(async () => {
    if (!isSkipped(pulsar)) await pulsar.stop();
  });

  test('admin API creates a tenant, a namespace and a partitioned topic', async (t) => {
    if (isSkipped(pulsar)) return t.skip(pulsar.skipped);
    assert.deepEqual(await admin('GET', 'clusters'), ['standalone']);
    await admin('PUT', `tenants/${tenant}`, { adminRoles: [], allowedClusters: ['standalone'] });
    await admin('PUT', `namespaces/${tenant}/${namespace}`);
    await admin('PUT', `${topicPath}/partitions`, PARTITIONS);
    const metadata = (await admin('GET', `${topicPath}/partitions`)) as { partitions: number };
    assert.equal(metadata.partitions, PARTITIONS);
    assert.ok(((await admin('GET', `namespaces/${tenant}`)) as string[]).includes(`${tenant}/${namespace}`));
  });

  test('WebSocket producer and consumer: 100 keyed messages, acked, in order per key', async (t) => {
    if (isSkipped(pulsar)) return t.skip(pulsar.skipped);
    // Subscribe first so that the subscription starts before the first message.
    const consumer = await Session.open(wsUrl(`consumer/${topicPath}/cds-it?subscriptionType=Exclusive`));
    const producer = await Session.open(wsUrl(`producer/${topicPath}?batchingEnabled=false`));
    try {
      for (let seq = 0; seq < MESSAGES; seq++) {
        const p = payloadOf(seq);
        producer.send({
          payload: Buffer.from(JSON.stringify(p)).toString('base64'),
          properties: { seq: String(seq), kind: 'test' },
          key: p.key,
          context: String(seq),
        });
      }
      for (let n = 0; n < MESSAGES; n++) {
        const ack = await producer.next();
        assert.equal(ack.result, 'ok', JSON.stringify(ack));
        sentPartition.set(Number(ack.context), partitionOf(String(ack.messageId)));
      }
      assert.equal(sentPartition.size, MESSAGES);
      const partitionsOfKey = new Map<string, Set<number>>();
      for (const [seq, partition] of sentPartition) {
        assert.ok(partition >= 0 && partition < PARTITIONS, `partition ${partition}`);
        const key = payloadOf(seq).key;
        partitionsOfKey.set(key, (partitionsOfKey.get(key) ?? new Set()).add(partition));
      }
      for (const [key, parts] of partitionsOfKey) assert.equal(parts.size, 1, `${key} spans partitions`);
      assert.ok(new Set(sentPartition.values()).size > 1, 'keys should spread over partitions');

      const lastSeqOfKey = new Map<string, number>();
      const seen = new Set<number>();
      for (let n = 0; n < MESSAGES; n++) {
        const msg = await consumer.next();
        const body = JSON.parse(Buffer.from(String(msg.payload), 'base64').toString()) as ReturnType<
          typeof payloadOf
        >;
        assert.deepEqual(body, payloadOf(body.seq));
        assert.equal(msg.key, body.key);
        assert.deepEqual(msg.properties, { seq: String(body.seq), kind: 'test' });
        assert.equal(partitionOf(String(msg.messageId)), sentPartition.get(body.seq));
        assert.ok(
          (lastSeqOfKey.get(body.key) ?? -1) < body.seq,
          `${body.key}: ${body.seq} after ${lastSeqOfKey.get(body.key)}`,
        );
        lastSeqOfKey.set(body.key, body.seq);
        assert.ok(!seen.has(body.seq), `duplicate ${body.seq}`);
        seen.add(body.seq);
        consumer.send({ messageId: msg.messageId });
      }
      assert.equal(seen.size, MESSAGES);
      // Every ack reached the broker: the subscription's backlog drains to zero.
      const deadline = Date.now() + 15_000;
      let backlog = -1;
      while (Date.now() < deadline) {
        const stats = (await admin('GET', `${topicPath}/partitioned-stats`)) as {
          subscriptions: Record<string, { msgBacklog: number }>;
        };
        backlog = stats.subscriptions['cds-it']?.msgBacklog ?? -1;
        if (backlog === 0) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(backlog, 0, 'backlog after acks');
    } finally {
      await producer.close();
      await consumer.close();
    }
  });

  test('WebSocket reader from earliest reads every message again', async (t) => {
    if (isSkipped(pulsar)) return t.skip(pulsar.skipped);
    const reader = await Session.open(wsUrl(`reader/${topicPath}?messageId=earliest`));
    try {
      const seen = new Set<number>();
      const lastSeqOfKey = new Map<string, number>();
      for (let n = 0; n < MESSAGES; n++) {
        const msg = await reader.next();
        const body = JSON.parse(Buffer.from(String(msg.payload), 'base64').toString()) as ReturnType<
          typeof payloadOf
        >;
        assert.deepEqual(body, payloadOf(body.seq));
        assert.ok((lastSeqOfKey.get(body.key) ?? -1) < body.seq);
        lastSeqOfKey.set(body.key, body.seq);
        seen.add(body.seq);
        reader.send({ messageId: msg.messageId });
      }
      assert.equal(seen.size, MESSAGES);
    } finally {
      await reader.close();
    }
  });
});
