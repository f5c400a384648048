/**
 * A TypeScript subscriber for the WebSocket transport (ADR 0009): reconnects with backoff, resumes
 * (the server redelivers what was not acknowledged), detects gaps through `prevPosition`, acks and
 * grants credits. Events are a typed union read with `for await`. In cluster mode (ADR 0015) it
 * follows NOT_OWNER to the instance that dispatches the subscription, and when an instance cannot
 * be reached it tries the next of the URLs it was given.
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
  /**
   * On a first delivery only: the previous element of the key's chain went to another consumer (a
   * consumer-group rebalance, a reconnect, a restart) or there is none; the consumer starts a new
   * chain for the key at this delivery (ADR 0009).
   */
  readonly handover?: true;
  readonly expired?: true;
  readonly decision: unknown;
}

/** A chain break seen by {@link GapDetector}: the consumer missed `expected`. */
export interface Gap {
  readonly key: string;
  /** The delivery's prevPosition, which this consumer never received. */
  readonly expected: string | null;
  /** The last position of the key this consumer received (null: none since its chain started). */
  readonly last: string | null;
  readonly got: Delivery;
}

/**
 * Detects missed deliveries through `prevPosition` (DESIGN 5; ADR 0009), also in consumer groups:
 * a delivery flagged `handover` starts a new chain for its key; any other first delivery
 * (`deliveryCount` 1) must name in `prevPosition` a position of its key this consumer received
 * since then (or null when it received none). Redeliveries are not checked (their chain was).
 *
 * Per key it remembers the last first delivery received (the engine names exactly that one when
 * nothing was lost: ADR 0009) and the last 256 positions received; 65,536 keys. The last first
 * delivery is kept apart from the 256 because redeliveries can come between two elements of a
 * chain in any number: an expedited halt or cancel overtakes the waiting redeliveries of its key
 * (after a restart, up to a window of them), and the next first delivery names the halt.
 */
export class GapDetector {
  readonly #seen = new Map<string, { recent: string[]; last: string | null }>();

  /** Forgets every chain (the log's epoch changed: positions of before name nothing now). */
  reset(): void {
    this.#seen.clear();
  }

  /** Records one delivery; returns the gap it reveals, if any. */
  check(d: Delivery): Gap | undefined {
    let k = this.#seen.get(d.key);
    let gap: Gap | undefined;
    const first = d.deliveryCount === 1;
    if (d.handover === true || k === undefined) {
      if (d.handover !== true && first && d.prevPosition !== null)
        gap = { key: d.key, expected: d.prevPosition, last: null, got: d };
      k = { recent: [], last: null };
    } else if (
      first &&
      (d.prevPosition === null || (d.prevPosition !== k.last && !k.recent.includes(d.prevPosition)))
    ) {
      gap = { key: d.key, expected: d.prevPosition, last: k.recent[k.recent.length - 1] ?? null, got: d };
    }
    if (first || d.handover === true) k.last = d.position;
    if (!k.recent.includes(d.position)) k.recent.push(d.position);
    if (k.recent.length > 256) k.recent.shift();
    this.#seen.delete(d.key);
    this.#seen.set(d.key, k);
    if (this.#seen.size > 65_536) {
      const oldest = this.#seen.keys().next();
      if (oldest.done !== true) this.#seen.delete(oldest.value);
    }
    return gap;
  }
}

/** What the client reports. */
export type SubscriberEvent =
  | { readonly type: 'connected'; readonly consumer: string; readonly epoch: string; readonly url: string }
  /**
   * This connection found the log at another epoch than the previous one did: the service was
   * restored from a backup (or reset). Positions of the old epoch mean nothing now: what was not
   * acknowledged before comes again from the subscription's restored cursor, in the new epoch.
   */
  | { readonly type: 'epochChanged'; readonly previous: string; readonly epoch: string }
  | { readonly type: 'deliveries'; readonly deliveries: readonly Delivery[] }
  | ({ readonly type: 'gap' } & Gap)
  | { readonly type: 'error'; readonly error: { code: string; message: string } }
  | { readonly type: 'disconnected'; readonly code: number; readonly reason: string };

/** Result of one ack or nack. */
export interface AckOutcome {
  readonly position: string;
  readonly ok: boolean;
  readonly code?: string;
  readonly message?: string;
}

/** Result of a live update. */
export type UpdateOutcome =
  | { readonly ok: true; readonly version: number }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** Options of {@link Subscriber}. */
export interface SubscriberOptions {
  /** Base URL of the service (http://host:port). */
  readonly url: string;
  /** More instances of the same cluster, tried in turn when the current one cannot be reached. */
  readonly urls?: readonly string[];
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
  #epoch: string | undefined;
  readonly #seeds: readonly string[];
  #seed = 0;
  /** Where the next connection goes: a seed, or the owner a NOT_OWNER named. */
  #target: string;
  /** Set by a NOT_OWNER naming an owner: the close that follows reconnects there at once. */
  #redirect: string | undefined;
  #redirects = 0;
  /** Whether the current connection got `subscribed` (else a failure moves on to the next URL). */
  #subscribedHere = false;
  readonly #waiting = new Map<number, (r: AckOutcome[]) => void>();
  readonly #updates = new Map<number, (r: UpdateOutcome) => void>();
  readonly #events: SubscriberEvent[] = [];
  #wake: (() => void) | undefined;
  /** Per key, the chain of positions received (gap detection). */
  readonly gaps = new GapDetector();
  /** Frames to drop on arrival, as if lost (tests of gap detection). */
  dropNextFrames = 0;

  constructor(opts: SubscriberOptions) {
    this.#opts = opts;
    this.#delay = opts.reconnect === false ? 0 : (opts.reconnect?.minMs ?? 50);
    this.#seeds = [opts.url, ...(opts.urls ?? [])];
    this.#target = opts.url;
    this.#connect();
  }

  #emit(e: SubscriberEvent): void {
    this.#events.push(e);
    this.#wake?.();
  }

  #connect(): void {
    if (this.#closed) return;
    const url = this.#target;
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws`, {
      headers: { authorization: `Bearer ${this.#opts.apiKey}` },
    });
    this.#ws = ws;
    this.#subscribedHere = false;
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          op: 'subscribe',
          subscription: this.#opts.subscription,
          credits: this.#opts.credits ?? 100,
        }),
      );
    });
    ws.on('message', (data) => this.#onFrame(String(data), url));
    ws.on('error', () => undefined);
    ws.on('close', (code, reason) => {
      if (this.#ws !== ws) return;
      this.#ws = undefined;
      for (const [, w] of this.#waiting) w([]);
      this.#waiting.clear();
      for (const [, w] of this.#updates) w({ ok: false, code: 'DISCONNECTED', message: 'connection lost' });
      this.#updates.clear();
      this.#emit({ type: 'disconnected', code, reason: String(reason) });
      const r = this.#opts.reconnect;
      if (this.#closed || r === false || code === 4511 || code === 4540 || code === 4541) return;
      const to = this.#redirect;
      this.#redirect = undefined;
      if (to !== undefined) {
        this.#target = to; // NOT_OWNER named the owner: go there now
        return this.#connect();
      }
      // Unreachable, refused, or redirected in a loop: the next instance given. A connection that
      // worked tries the same instance again first (a restart, or a lease that moved: it redirects).
      if (!this.#subscribedHere || this.#redirects > 0) {
        this.#seed = (this.#seed + 1) % this.#seeds.length;
        this.#target = this.#seeds[this.#seed] as string;
        this.#redirects = 0;
      }
      setTimeout(() => this.#connect(), this.#delay).unref();
      this.#delay = Math.min(this.#delay * 2, r?.maxMs ?? 2000);
    });
  }

  #onFrame(text: string, url: string): void {
    let f: Record<string, unknown>;
    try {
      f = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return this.#emit({
        type: 'error',
        error: { code: 'MALFORMED_JSON', message: 'a frame that is not JSON' },
      });
    }
    switch (f['type']) {
      case 'subscribed': {
        this.#delay = this.#opts.reconnect === false ? 0 : (this.#opts.reconnect?.minMs ?? 50);
        this.#redirects = 0;
        this.#subscribedHere = true;
        const epoch = String(f['epoch']);
        const previous = this.#epoch;
        this.#epoch = epoch;
        if (previous !== undefined && previous !== epoch) {
          this.gaps.reset();
          this.#emit({ type: 'epochChanged', previous, epoch });
        }
        return this.#emit({ type: 'connected', consumer: String(f['consumer']), epoch, url });
      }
      case 'deliveries': {
        if (this.dropNextFrames > 0) {
          this.dropNextFrames--;
          return;
        }
        const ds = f['deliveries'] as Delivery[];
        for (const d of ds) {
          const gap = this.gaps.check(d);
          if (gap !== undefined) this.#emit({ type: 'gap', ...gap });
        }
        return this.#emit({ type: 'deliveries', deliveries: ds });
      }
      case 'ack':
      case 'nack': {
        const w = this.#waiting.get(f['id'] as number);
        this.#waiting.delete(f['id'] as number);
        return w?.(f['results'] as AckOutcome[]);
      }
      case 'updated': {
        const w = this.#updates.get(f['id'] as number);
        this.#updates.delete(f['id'] as number);
        return w?.({ ok: true, version: Number(f['version']) });
      }
      case 'error': {
        const e = f['error'] as { code: string; message: string; details?: Record<string, unknown> };
        if (e.code === 'NOT_OWNER') return this.#notOwner(e);
        const ref = f['ref'] as number; // the id of the message it answers, when it had one
        const w = this.#updates.get(ref);
        if (w !== undefined) {
          this.#updates.delete(ref);
          return w({ ok: false, code: e.code, message: e.message });
        }
        const a = this.#waiting.get(ref);
        this.#waiting.delete(ref);
        a?.([]);
        return this.#emit({ type: 'error', error: e });
      }
    }
  }

  /** The subscribe was answered NOT_OWNER: reconnect to the owner it names (at most 5 hops in a row). */
  #notOwner(e: { code: string; message: string; details?: Record<string, unknown> }): void {
    const owner = e.details?.['owner'] as { url?: unknown } | null | undefined;
    if (typeof owner?.url === 'string' && this.#redirects < 5) {
      this.#redirects++;
      this.#redirect = owner.url;
    }
    this.#emit({ type: 'error', error: { code: e.code, message: e.message } });
    this.#ws?.close(1000);
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

  /** The log epoch of the current (or last) connection; undefined before the first. */
  get epoch(): string | undefined {
    return this.#epoch;
  }

  /**
   * Acks positions and, by default, grants as many credits back. Resolves [] when disconnected.
   * The ack names the epoch of this connection (or `opts.epoch`, the epoch of the deliveries): the
   * service refuses positions of another epoch with EPOCH_MISMATCH.
   */
  async ack(
    positions: readonly string[],
    opts: { credit?: boolean; epoch?: string } = {},
  ): Promise<AckOutcome[]> {
    const epoch = opts.epoch ?? this.#epoch;
    const r = await this.#request({ op: 'ack', positions, ...(epoch === undefined ? {} : { epoch }) });
    if (opts.credit !== false && positions.length > 0) this.credit(positions.length);
    return r;
  }

  /** Negative acks: the deliveries come again after `delayMs` (or the backoff). */
  async nack(positions: readonly string[], delayMs?: number): Promise<AckOutcome[]> {
    const r = await this.#request({
      op: 'nack',
      positions,
      ...(delayMs === undefined ? {} : { delayMs }),
      ...(this.#epoch === undefined ? {} : { epoch: this.#epoch }),
    });
    this.credit(positions.length);
    return r;
  }

  /** Changes the subscription live (a PATCH body: filter, transform, policies); needs admin scope. */
  update(patch: Record<string, unknown>): Promise<UpdateOutcome> {
    const ws = this.#ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN)
      return Promise.resolve({ ok: false, code: 'DISCONNECTED', message: 'not connected' });
    const id = ++this.#seq;
    return new Promise((resolve) => {
      this.#updates.set(id, resolve);
      ws.send(JSON.stringify({ op: 'update', id, patch }));
    });
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
