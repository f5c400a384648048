/** Server-Sent Events delivery (ADR 0010): resume with Last-Event-ID, no loss across a disconnect, heartbeats, auth errors. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';

interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
  comment?: string;
}

/** A minimal SSE reader over fetch: events and comments as they are parsed. */
class SseReader {
  readonly events: SseEvent[] = [];
  readonly ac = new AbortController();
  status = 0;
  #waiters: (() => void)[] = [];
  #done: Promise<void> = Promise.resolve();

  async open(url: string, headers: Record<string, string>): Promise<void> {
    const res = await fetch(url, { headers, signal: this.ac.signal });
    this.status = res.status;
    if (res.status !== 200 || res.body === null) return;
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    this.#done = (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev: SseEvent = { event: 'message', id: undefined, data: '' };
            const data: string[] = [];
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) ev.comment = line.slice(1).trim();
              else if (line.startsWith('event: ')) ev.event = line.slice(7);
              else if (line.startsWith('id: ')) ev.id = line.slice(4);
              else if (line.startsWith('data: ')) data.push(line.slice(6));
            }
            ev.data = data.join('\n');
            this.events.push(ev);
            for (const w of this.#waiters.splice(0)) w();
          }
        }
      } catch {
        /* aborted */
      }
    })();
  }

  /** Waits until `pred` holds over the events read so far. */
  async until(pred: (evs: SseEvent[]) => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.events)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; ${this.events.length} events`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 500));
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async close(): Promise<void> {
    this.ac.abort();
    await this.#done;
  }
}

type Delivery = { position: string; deliveryCount: number; decision: { decisionId: string } };
const deliveriesOf = (evs: SseEvent[]) =>
  evs.filter((e) => e.event === 'deliveries').flatMap((e) => JSON.parse(e.data) as Delivery[]);

describe('delivery over Server-Sent Events', () => {
  let t: TestApp;
  let base: string;
  const auth = (key = ADMIN_KEY) => ({ authorization: `Bearer ${key}`, accept: 'text/event-stream' });
  before(async () => {
    t = await startTestApp();
    base = (await t.app.listen()).http;
  });
  after(async () => t?.close());

  const createSub = async (name: string, extra: Record<string, unknown> = {}) => {
    const r = await t.request('POST', '/v1/subscriptions', {
      body: { name, topics: ['decisions.>'], ...extra },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  const publish = async (from: number, n: number) => {
    const ds = Array.from({ length: n }, (_, i) =>
      makeDecision(from + i, { portfolioId: `pf-${i % 3}`, expiresAt: '2099-01-01T00:00:00Z' }),
    );
    const r = await t.request('POST', '/v1/decisions', { body: ds });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };

  it('refuses without credentials, without scope, for an unknown subscription, and for another media type', async () => {
    const name = `sse-auth-${process.pid}`;
    await createSub(name);
    const url = `${base}/v1/subscriptions/${name}/events`;
    const none = await fetch(url, { headers: { accept: 'text/event-stream' } });
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
    const k = await t.request('POST', '/v1/keys', {
      body: { name: 'sse-other', scopes: ['subscribe:other.>'] },
    });
    assert.equal(k.status, 201, JSON.stringify(k.body));
    const denied = await fetch(url, { headers: auth(k.body.key as string) });
    assert.equal(denied.status, 403);
    assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'FORBIDDEN');
    const missing = await fetch(`${base}/v1/subscriptions/nope-${process.pid}/events`, { headers: auth() });
    assert.equal(missing.status, 404);
    const json = await fetch(url, { headers: { ...auth(), accept: 'application/json' } });
    assert.equal(json.status, 406);
    assert.equal(((await json.json()) as { error: { code: string } }).error.code, 'NOT_ACCEPTABLE');
    const bad = await fetch(`${url}?credits=0`, { headers: auth() });
    assert.equal(bad.status, 400);
  });

  it('sends heartbeat comments while idle', async () => {
    const name = `sse-hb-${process.pid}`;
    await createSub(name);
    const r = new SseReader();
    await r.open(`${base}/v1/subscriptions/${name}/events?heartbeatMs=250`, auth());
    assert.equal(r.status, 200);
    await r.until(
      (evs) => evs.filter((e) => e.comment?.startsWith('heartbeat') === true).length >= 2,
      10_000,
    );
    assert.equal(r.events[0]?.event, 'subscribed');
    await r.close();
  });

  it('resumes with Last-Event-ID: nothing lost across a disconnect, nothing acknowledged or received sent again', async () => {
    const name = `sse-resume-${process.pid}`;
    await createSub(name, { ackTimeoutMs: 60_000 });
    const N = 60;
    await publish(5000, 40);
    const url = `${base}/v1/subscriptions/${name}/events?credits=5`;
    const a = new SseReader();
    await a.open(url, auth());
    assert.equal(a.status, 200);
    await a.until((evs) => deliveriesOf(evs).length >= 12);
    // The client has read up to here; it acks a part of it, then its connection drops.
    const seenEvents = a.events.filter((e) => e.event === 'deliveries');
    const cut = seenEvents.findIndex((_, i) => deliveriesOf(seenEvents.slice(0, i + 1)).length >= 12);
    const kept = seenEvents.slice(0, cut + 1);
    const lastId = kept[kept.length - 1]?.id as string;
    const received = deliveriesOf(kept);
    const acked = received.slice(0, 6).map((d) => d.position);
    const ack = await t.request('POST', `/v1/subscriptions/${name}/ack`, { body: { positions: acked } });
    assert.equal(ack.status, 200);
    assert.ok((ack.body.results as { ok: boolean }[]).every((x) => x.ok));
    await a.close();
    await publish(5040, N - 40); // published while the client is away

    const b = new SseReader();
    await b.open(url, { ...auth(), 'last-event-id': lastId });
    assert.equal(b.status, 200);
    await b.until((evs) => evs.length > 0);
    assert.equal(b.events[0]?.event, 'subscribed');
    assert.equal(JSON.parse((b.events[0] as SseEvent).data).resumed, true);
    const all = new Set(received.map((d) => d.decision.decisionId));
    const receivedPos = new Set(received.map((d) => d.position));
    const again: string[] = [];
    await b.until((evs) => {
      for (const d of deliveriesOf(evs)) {
        if (receivedPos.has(d.position)) again.push(d.position);
        all.add(d.decision.decisionId);
      }
      return all.size >= N;
    });
    assert.equal(all.size, N, 'every decision arrived');
    assert.deepEqual(again, [], 'nothing received before Last-Event-ID came again');
    assert.ok(
      deliveriesOf(b.events).every((d) => d.deliveryCount === 1),
      'what is sent again after the cut is the same delivery, not a redelivery',
    );
    // The rest is acknowledged through REST; nothing is outstanding afterwards.
    const rest = [...receivedPos]
      .filter((p) => !acked.includes(p))
      .concat(deliveriesOf(b.events).map((d) => d.position));
    const ack2 = await t.request('POST', `/v1/subscriptions/${name}/ack`, { body: { positions: rest } });
    assert.ok(
      (ack2.body.results as { ok: boolean }[]).every((x) => x.ok),
      JSON.stringify(ack2.body),
    );
    const st = await t.request('GET', `/v1/subscriptions/${name}`);
    assert.equal(st.body.status.pending, 0, JSON.stringify(st.body.status));
    await b.close();
  });
});
