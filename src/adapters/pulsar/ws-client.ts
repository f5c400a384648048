/**
 * PulsarClient over Pulsar's WebSocket API (producer and reader endpoints under `/ws/v2/`) and its
 * admin REST API. The WebSocket and admin endpoints follow from the broker's web service URL
 * (http://host:8080 -> ws://host:8080/ws/v2/...). Producers and readers reconnect by themselves with
 * exponential backoff (100 ms doubling to 5 s, with jitter); what happens to messages in flight when a
 * connection drops is in client.ts.
 */
import WebSocket from 'ws';
import { RestPulsarAdmin } from './admin.ts';
import { PulsarError } from './client.ts';
import type {
  IncomingMessage,
  OutgoingMessage,
  ProducerOptions,
  PulsarAdmin,
  PulsarClient,
  PulsarProducer,
  PulsarReader,
  ReaderEvent,
  StartAt,
} from './client.ts';
import { decodeMessageId, encodeMessageId, justBefore } from './message-id.ts';
import type { MessageId } from './message-id.ts';

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** Pulsar's WebSocket reader pushes at most this many messages ahead of our acks (its cap is 1000). */
const READER_QUEUE = 1000;
/** Interval of WebSocket pings on every open session. */
const KEEPALIVE_MS = 30_000;

function backoff(attempt: number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 10));
  return Math.round(base / 2 + (Math.random() * base) / 2);
}

/** `persistent://t/ns/name` -> `persistent/t/ns/name` for WebSocket paths. */
function wsTopicPath(topic: string): string {
  const m = /^(persistent|non-persistent):\/\/([^/]+)\/([^/]+)\/(.+)$/.exec(topic);
  if (m === null) throw new PulsarError(`not a full topic name: '${topic}'`, { retriable: false });
  const [, domain, tenant, ns, name] = m as unknown as [string, string, string, string, string];
  return `${domain}/${encodeURIComponent(tenant)}/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
}

/**
 * Opens a WebSocket; rejects with a retriable PulsarError on refusal, error or timeout. `onOpen` runs
 * synchronously in the open event: listeners attached later (after an await) could miss a first frame
 * that arrived with the upgrade response (ws emits it on the next tick, before promise callbacks).
 */
function openSocket(url: string, onOpen: (ws: WebSocket) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: CONNECT_TIMEOUT_MS });
    const fail = (message: string, status?: number): void => {
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
      reject(new PulsarError(message, { retriable: true, ...(status === undefined ? {} : { status }) }));
    };
    ws.once('open', () => {
      ws.removeAllListeners();
      // Pings keep an idle session open (the broker closes sessions idle for
      // webSocketSessionIdleTimeoutMillis, 300 s in the standalone sample).
      const keepAlive = setInterval(() => ws.readyState === WebSocket.OPEN && ws.ping(), KEEPALIVE_MS);
      keepAlive.unref();
      ws.once('close', () => clearInterval(keepAlive));
      onOpen(ws);
      resolve(ws);
    });
    ws.once('error', (err) => fail(`${url}: ${err.message}`));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => fail(`${url}: HTTP ${res.statusCode} ${body.slice(0, 300)}`, res.statusCode));
      res.on('error', () => fail(`${url}: HTTP ${res.statusCode}`, res.statusCode));
    });
  });
}

interface PendingSend {
  readonly resolve: (id: MessageId) => void;
  readonly reject: (e: PulsarError) => void;
}

/** A WebSocket producer on one topic. */
class WsProducer implements PulsarProducer {
  readonly topic: string;
  readonly #url: string;
  readonly #maxPending: number;
  #ws: WebSocket | undefined;
  #closed = false;
  #attempt = 0;
  #context = 0;
  readonly #pending = new Map<string, PendingSend>();
  #connectWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #roomWaiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(wsBase: string, topic: string, opts: ProducerOptions) {
    this.topic = topic;
    const q = new URLSearchParams({
      batchingEnabled: String(opts.batching ?? true),
      batchingMaxPublishDelay: String(opts.batchingMaxPublishDelayMs ?? 1),
      batchingMaxMessages: String(opts.batchingMaxMessages ?? 1000),
      maxPendingMessages: String(opts.maxPendingMessages ?? 10_000),
      sendTimeoutMillis: String(opts.sendTimeoutMs ?? 30_000),
    });
    this.#maxPending = opts.maxPendingMessages ?? 10_000;
    this.#url = `${wsBase}/producer/${wsTopicPath(topic)}?${q}`;
    void this.#connect();
  }

  get connected(): boolean {
    return this.#ws !== undefined && this.#ws.readyState === WebSocket.OPEN;
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    try {
      const ws = await openSocket(this.#url, (ws) => {
        ws.on('message', (data) => this.#onFrame(data.toString()));
        ws.on('error', () => {});
        ws.on('close', (code, reason) => this.#onClose(ws, `closed ${code} ${reason.toString()}`));
        this.#ws = ws;
      });
      if (this.#closed) {
        this.#ws = undefined;
        ws.terminate();
        return;
      }
      this.#attempt = 0;
      const waiters = this.#connectWaiters;
      this.#connectWaiters = [];
      for (const w of waiters) w.resolve();
    } catch {
      this.#schedule();
    }
  }

  #schedule(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, backoff(this.#attempt++));
  }

  #onClose(ws: WebSocket, why: string): void {
    if (this.#ws !== ws) return;
    this.#ws = undefined;
    const err = new PulsarError(`producer ${this.topic}: connection lost (${why}); outcome unknown`, {
      retriable: true,
    });
    this.#failPending(err);
    this.#schedule();
  }

  #failPending(err: PulsarError): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
    this.#wakeRoom();
  }

  #wakeRoom(): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const w of waiters) w();
  }

  #onFrame(text: string): void {
    let frame: { result?: string; messageId?: string; context?: string; errorMsg?: string };
    try {
      frame = JSON.parse(text) as typeof frame;
    } catch {
      return;
    }
    const ctx = frame.context;
    if (ctx === undefined) return;
    const p = this.#pending.get(ctx);
    if (p === undefined) return;
    this.#pending.delete(ctx);
    if (this.#pending.size < this.#maxPending) this.#wakeRoom();
    if (frame.result === 'ok' && typeof frame.messageId === 'string') {
      try {
        p.resolve(decodeMessageId(frame.messageId));
      } catch (e) {
        p.reject(
          new PulsarError(`producer ${this.topic}: bad message id: ${(e as Error).message}`, {
            retriable: true,
          }),
        );
      }
    } else {
      const result = frame.result ?? 'send-error';
      // Malformed requests are ours to fix; anything else (timeouts, broker trouble) may pass later.
      const retriable = !/PayloadEncodingError|FailedToDeserializeFromJSON|send-error:(1|3)\b/.test(result);
      p.reject(
        new PulsarError(`producer ${this.topic}: ${result}: ${frame.errorMsg ?? ''}`.trim(), { retriable }),
      );
    }
  }

  async send(message: OutgoingMessage): Promise<MessageId> {
    while (this.#pending.size >= this.#maxPending && this.connected && !this.#closed)
      await new Promise<void>((r) => this.#roomWaiters.push(r));
    const ws = this.#ws;
    if (this.#closed) throw new PulsarError(`producer ${this.topic}: closed`, { retriable: false });
    if (ws === undefined || ws.readyState !== WebSocket.OPEN)
      throw new PulsarError(`producer ${this.topic}: not connected`, { retriable: true });
    const context = String(++this.#context);
    const frame: Record<string, unknown> = {
      payload: Buffer.from(
        message.payload.buffer,
        message.payload.byteOffset,
        message.payload.byteLength,
      ).toString('base64'),
      context,
    };
    if (message.properties !== undefined) frame.properties = message.properties;
    if (message.key !== undefined) frame.key = message.key;
    if (message.eventTime !== undefined && message.eventTime > 0)
      frame.eventTime = new Date(message.eventTime).toISOString();
    return await new Promise<MessageId>((resolve, reject) => {
      this.#pending.set(context, { resolve, reject });
      ws.send(JSON.stringify(frame), (err) => {
        if (err === undefined || err === null) return;
        if (this.#pending.delete(context))
          reject(new PulsarError(`producer ${this.topic}: ${err.message}`, { retriable: true, cause: err }));
      });
    });
  }

  whenConnected(signal?: AbortSignal): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.#closed)
      return Promise.reject(new PulsarError(`producer ${this.topic}: closed`, { retriable: false }));
    return new Promise<void>((resolve, reject) => {
      const w = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      const onAbort = (): void => {
        this.#connectWaiters = this.#connectWaiters.filter((x) => x !== w);
        reject(signal?.reason);
      };
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#connectWaiters.push(w);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    const err = new PulsarError(`producer ${this.topic}: closed`, { retriable: false });
    for (const w of this.#connectWaiters) w.reject(err);
    this.#connectWaiters = [];
    const ws = this.#ws;
    this.#ws = undefined;
    this.#failPending(
      new PulsarError(`producer ${this.topic}: closed; outcome unknown`, { retriable: true }),
    );
    if (ws !== undefined) await closeSocket(ws);
  }
}

async function closeSocket(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      ws.terminate();
      resolve();
    }, 2000);
    t.unref();
    ws.once('close', () => {
      clearTimeout(t);
      resolve();
    });
    try {
      ws.close();
    } catch {
      clearTimeout(t);
      resolve();
    }
  });
}

interface ConsumerFrame {
  messageId: string;
  payload: string;
  properties?: Record<string, string>;
  publishTime?: string;
  eventTime?: string;
  key?: string;
}

/** A WebSocket reader of one topic, yielding batches of messages; resumes after the last one yielded. */
class WsReader implements PulsarReader {
  readonly topic: string;
  readonly #wsBase: string;
  readonly #start: StartAt;
  #lastId: MessageId | undefined;
  #ws: WebSocket | undefined;
  #closed = false;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Received and not yet yielded; acked (so the proxy sends more) when yielded. */
  #buffer: { message: IncomingMessage; raw: string }[] = [];
  #events: ReaderEvent[] = [];
  #wake: (() => void) | undefined;

  constructor(wsBase: string, topic: string, start: StartAt) {
    this.topic = topic;
    this.#wsBase = wsBase;
    this.#start = start;
    void this.#connect();
  }

  get lastId(): MessageId | undefined {
    return this.#lastId;
  }

  #url(): string {
    let messageId: string;
    const s = this.#start;
    if (this.#lastId !== undefined) messageId = encodeMessageId(this.#lastId);
    else if (s === 'earliest' || s === 'latest') messageId = s;
    else if ('after' in s) messageId = encodeMessageId(s.after);
    else messageId = encodeMessageId(justBefore(s.at));
    const q = new URLSearchParams({ messageId, receiverQueueSize: String(READER_QUEUE) });
    return `${this.#wsBase}/reader/${wsTopicPath(this.topic)}?${q}`;
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    try {
      const ws = await openSocket(this.#url(), (ws) => {
        ws.on('message', (data) => this.#onFrame(ws, data.toString()));
        ws.on('error', () => {});
        ws.on('close', (code, reason) => this.#onClose(ws, `closed ${code} ${reason.toString()}`));
        this.#ws = ws;
      });
      if (this.#closed) {
        this.#ws = undefined;
        ws.terminate();
        return;
      }
      this.#attempt = 0;
      this.#push({ type: 'connected' });
    } catch (e) {
      this.#push({ type: 'disconnected', error: e as PulsarError });
      this.#schedule();
    }
  }

  #schedule(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, backoff(this.#attempt++));
  }

  #onClose(ws: WebSocket, why: string): void {
    if (this.#ws !== ws) return;
    this.#ws = undefined;
    // Messages received but not yet yielded are dropped: the reconnect resumes after the last yielded.
    this.#buffer = [];
    this.#push({
      type: 'disconnected',
      error: new PulsarError(`reader ${this.topic}: ${why}`, { retriable: true }),
    });
    this.#schedule();
  }

  #onFrame(ws: WebSocket, text: string): void {
    if (this.#ws !== ws) return;
    let f: ConsumerFrame;
    try {
      f = JSON.parse(text) as ConsumerFrame;
    } catch {
      return;
    }
    if (typeof f.messageId !== 'string') return;
    const message: IncomingMessage = {
      id: decodeMessageId(f.messageId),
      payload: Buffer.from(f.payload ?? '', 'base64'),
      properties: f.properties ?? {},
      key: f.key,
      publishTime: f.publishTime === undefined ? 0 : Date.parse(f.publishTime),
      eventTime: f.eventTime === undefined ? undefined : Date.parse(f.eventTime),
    };
    this.#buffer.push({ message, raw: f.messageId });
    this.#wake?.();
  }

  #push(e: ReaderEvent): void {
    this.#events.push(e);
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ReaderEvent> {
    while (!this.#closed) {
      const e = this.#events.shift();
      if (e !== undefined) {
        yield e;
        continue;
      }
      if (this.#buffer.length > 0) {
        const batch = this.#buffer;
        this.#buffer = [];
        const ws = this.#ws;
        const last = batch[batch.length - 1];
        if (last !== undefined) this.#lastId = last.message.id;
        // One ack frame per message: the proxy counts them to keep pushing.
        if (ws !== undefined && ws.readyState === WebSocket.OPEN)
          for (const b of batch) ws.send(`{"messageId":"${b.raw}"}`);
        yield { type: 'messages', messages: batch.map((b) => b.message) };
        continue;
      }
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws !== undefined) await closeSocket(ws);
  }
}

/** A PulsarClient on the broker (or proxy) whose web service URL is `webServiceUrl`. */
export class WsPulsarClient implements PulsarClient {
  readonly admin: PulsarAdmin;
  readonly #wsBase: string;
  readonly #open = new Set<{ close(): Promise<void> }>();

  constructor(webServiceUrl: string) {
    const base = webServiceUrl.replace(/\/+$/, '');
    if (!/^https?:\/\//.test(base))
      throw new PulsarError(`the Pulsar URL must be http:// or https://, not '${webServiceUrl}'`, {
        retriable: false,
      });
    this.admin = new RestPulsarAdmin(base);
    this.#wsBase = `${base.replace(/^http/, 'ws')}/ws/v2`;
  }

  producer(topic: string, options: ProducerOptions = {}): PulsarProducer {
    const p = new WsProducer(this.#wsBase, topic, options);
    this.#track(p);
    return p;
  }

  reader(topic: string, start: StartAt): PulsarReader {
    const r = new WsReader(this.#wsBase, topic, start);
    this.#track(r);
    return r;
  }

  #track(x: { close(): Promise<void> }): void {
    this.#open.add(x);
    const close = x.close.bind(x);
    x.close = async () => {
      this.#open.delete(x);
      await close();
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.#open].map((x) => x.close()));
  }
}
