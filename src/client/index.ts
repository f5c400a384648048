/**
 * A TypeScript subscriber for the WebSocket transport (ADR 0009): reconnects with backoff, resumes
 * (the server redelivers what was not acknowledged), detects gaps through `prevPosition`, acks and
 * grants credits. Events are a typed union read with `for await`.
 */
import WebSocket from 'ws';

/** One delivery as the server sends it (DESIGN 5). */
export interface Delivery {
  readonly position: string;
  readonly prevPosition: string | null;
  readonly epoch: string;
  readonly key: string;
  readonly topics: readonly string[];
  readonly deliveryCount: number;
  readonly expedited?: true;
  readonly expired?: true;
  readonly decision: unknown;
}

/** What the client reports. */
export type SubscriberEvent =
  | { readonly type: 'connected'; readonly consumer: string }
  | { readonly type: 'deliveries'; readonly deliveries: readonly Delivery[] }
  | { readonly type: 'gap'; readonly key: string; readonly expected: string | null; readonly got: Delivery }
  | { readonly type: 'error'; readonly error: { code: string; message: string } }
  | { readonly type: 'disconnected'; readonly code: number; readonly reason: string };

/** Result of one ack or nack. */
export interface AckOutcome {
  readonly position: string;
  readonly ok: boolean;
  readonly code?: string;
  readonly message?: string;
}

/** Options of {@link Subscriber}. */
export interface SubscriberOptions {
  /** Base URL of the service (http://host:port). */
  readonly url: string;
  readonly apiKey: string;
  readonly subscription: string;
  /** Credits granted at connect; acks give them back (default 100). */
  readonly credits?: number;
  /** Reconnect delays in ms (default 50 doubling to 2,000); false to stay disconnected. */
  readonly reconnect?: { readonly minMs: number; readonly maxMs: number } | false;
}

/** A WebSocket subscriber of one subscription. */
export class Subscriber {
  readonly #opts: SubscriberOptions;
  #ws: WebSocket | undefined;
  #closed = false;
  #seq = 0;
  #delay: number;
  readonly #waiting = new Map<number, (r: AckOutcome[]) => void>();
  readonly #events: SubscriberEvent[] = [];
  #wake: (() => void) | undefined;
  /** Per key, the last position received (for gap detection). */
  readonly lastSeen = new Map<string, string>();

  constructor(opts: SubscriberOptions) {
    this.#opts = opts;
    this.#delay = opts.reconnect === false ? 0 : (opts.reconnect?.minMs ?? 50);
    this.#connect();
  }

  #emit(e: SubscriberEvent): void {
    this.#events.push(e);
    this.#wake?.();
  }

  #connect(): void {
    if (this.#closed) return;
    const ws = new WebSocket(`${this.#opts.url.replace(/^http/, 'ws')}/v1/ws`, {
      headers: { authorization: `Bearer ${this.#opts.apiKey}` },
    });
    this.#ws = ws;
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          op: 'subscribe',
          subscription: this.#opts.subscription,
          credits: this.#opts.credits ?? 100,
        }),
      );
    });
    ws.on('message', (data) => this.#onFrame(String(data)));
    ws.on('error', () => undefined);
    ws.on('close', (code, reason) => {
      if (this.#ws !== ws) return;
      this.#ws = undefined;
      for (const [, w] of this.#waiting) w([]);
      this.#waiting.clear();
      this.#emit({ type: 'disconnected', code, reason: String(reason) });
      const r = this.#opts.reconnect;
      if (this.#closed || r === false || code === 4511 || code === 4540 || code === 4541) return;
      setTimeout(() => this.#connect(), this.#delay).unref();
      this.#delay = Math.min(this.#delay * 2, r?.maxMs ?? 2000);
    });
  }

  #onFrame(text: string): void {
    const f = JSON.parse(text) as Record<string, unknown>;
    switch (f['type']) {
      case 'subscribed':
        this.#delay = this.#opts.reconnect === false ? 0 : (this.#opts.reconnect?.minMs ?? 50);
        return this.#emit({ type: 'connected', consumer: String(f['consumer']) });
      case 'deliveries': {
        const ds = f['deliveries'] as Delivery[];
        for (const d of ds) {
          const last = this.lastSeen.get(d.key);
          if (d.deliveryCount === 1 && last !== undefined && d.prevPosition !== last)
            this.#emit({ type: 'gap', key: d.key, expected: last, got: d });
          if (d.deliveryCount === 1 || last === undefined) this.lastSeen.set(d.key, d.position);
        }
        return this.#emit({ type: 'deliveries', deliveries: ds });
      }
      case 'ack':
      case 'nack': {
        const w = this.#waiting.get(f['id'] as number);
        this.#waiting.delete(f['id'] as number);
        return w?.(f['results'] as AckOutcome[]);
      }
      case 'error':
        return this.#emit({ type: 'error', error: f['error'] as { code: string; message: string } });
    }
  }

  #request(msg: Record<string, unknown>): Promise<AckOutcome[]> {
    const ws = this.#ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return Promise.resolve([]);
    const id = ++this.#seq;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      ws.send(JSON.stringify({ ...msg, id }));
    });
  }

  /** Acks positions and, by default, grants as many credits back. Resolves [] when disconnected. */
  async ack(positions: readonly string[], opts: { credit?: boolean } = {}): Promise<AckOutcome[]> {
    const r = await this.#request({ op: 'ack', positions });
    if (opts.credit !== false && positions.length > 0) this.credit(positions.length);
    return r;
  }

  /** Negative acks: the deliveries come again after `delayMs` (or the backoff). */
  async nack(positions: readonly string[], delayMs?: number): Promise<AckOutcome[]> {
    const r = await this.#request({ op: 'nack', positions, ...(delayMs === undefined ? {} : { delayMs }) });
    this.credit(positions.length);
    return r;
  }

  /** Grants more credits. */
  credit(n: number): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify({ op: 'credits', n }));
  }

  /** Sends a raw message (tests of bad input, live updates). */
  sendRaw(msg: unknown): void {
    this.#ws?.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** Drops the connection without closing the subscriber (it reconnects). */
  dropConnection(): void {
    this.#ws?.terminate();
  }

  /** Events, as they come. */
  async *events(): AsyncGenerator<SubscriberEvent> {
    for (;;) {
      const e = this.#events.shift();
      if (e !== undefined) {
        yield e;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
  }

  /** The next event, waiting at most `ms`. */
  async next(ms = 5000): Promise<SubscriberEvent | undefined> {
    const e = this.#events.shift();
    if (e !== undefined || this.#closed) return e;
    await new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      this.#wake = () => {
        clearTimeout(t);
        r();
      };
    });
    this.#wake = undefined;
    return this.#events.shift();
  }

  /** Closes for good. */
  close(): void {
    this.#closed = true;
    this.#ws?.close(1000);
    this.#wake?.();
  }
}
