/**
 * One SSE consumer session (ADR 0010). A session owns one engine consumer and outlives its HTTP
 * response for `resumeWindowMs`, so that a client reconnecting with `Last-Event-ID` takes it over:
 * the events it confirmed (up to that id) are dropped, the later ones it may have missed are sent
 * again unchanged (they are still leased to this consumer: not a redelivery), then what the engine
 * sent meanwhile. Credits follow the socket: the credits a frame used are granted again when the
 * frame was accepted by the socket without exceeding its buffer, else on 'drain'.
 */
import type { ServerResponse } from 'node:http';
import type { ConsumerHandle, ConsumerSink } from '../../delivery/index.ts';
import { ERROR_CODES, type ErrorCode } from '../../errors/index.ts';

interface Event {
  readonly id: string;
  readonly frame: string;
  readonly n: number;
}

/** Options of a session. */
export interface SessionOptions {
  readonly subscription: string;
  readonly principalId: string;
  /** Deliveries the engine may have sent and the socket not yet accepted (the credit window). */
  readonly credits: number;
  /**
   * Deliveries kept after they were written, for a client that resumes (at least the subscription's
   * maxInFlight, so that every delivery still unacknowledged at this consumer can be sent again).
   */
  readonly retain: number;
  readonly heartbeatMs: number;
  readonly resumeWindowMs: number;
  /** Called once when the session ends. */
  readonly onEnd: (s: Session) => void;
}

const HISTORY = 4096;

/** Frames one `deliveries` event (data lines split on any newline the payload text holds). */
function frame(id: string, deliveries: readonly string[]): string {
  let data = `[${deliveries.join(',')}]`;
  if (data.includes('\n') || data.includes('\r')) data = data.replace(/\r\n|\r|\n/g, '\ndata: ');
  return `event: deliveries\nid: ${id}\ndata: ${data}\n\n`;
}

/** An SSE consumer that survives reconnects within its resume window. */
export class Session {
  handle: ConsumerHandle | undefined;
  #res: ServerResponse | undefined;
  /** Events written to the current or a previous response and not confirmed, oldest first. */
  #retained: Event[] = [];
  #retainedN = 0;
  /** Events produced while no response was attached. */
  #queued: Event[] = [];
  /** Ids of events already confirmed or dropped from `retained`, most recent last. */
  readonly #history: string[] = [];
  readonly #historySet = new Set<string>();
  #owed = 0;
  #waitingDrain = false;
  #hb: NodeJS.Timeout | undefined;
  #grace: NodeJS.Timeout | undefined;
  #ended = false;

  constructor(readonly opts: SessionOptions) {}

  /** The sink the engine sends to. */
  readonly sink: ConsumerSink = {
    send: (d) => this.#deliver(d),
    close: (code, message) => this.#closeFromEngine(code, message),
    // A notice is not a delivery: no id, not retained for a reconnect (the stats keep it).
    notice: (n) => this.#res?.write(`event: notice\ndata: ${JSON.stringify(n)}\n\n`),
  };

  /** Whether an event with this id was sent by this session (confirmed or not). */
  knows(id: string): boolean {
    return this.#historySet.has(id) || this.#retained.some((e) => e.id === id);
  }

  get connected(): boolean {
    return this.#res !== undefined;
  }

  /** Attaches a response; with `lastId`, events up to it count as received. */
  connect(res: ServerResponse, lastId: string | undefined, hello: string): void {
    const old = this.#res;
    this.#res = undefined;
    if (old !== undefined) old.end(); // a half-open older connection is taken over
    clearTimeout(this.#grace);
    this.#res = res;
    res.on('close', () => {
      if (this.#res === res) this.#disconnected();
    });
    res.on('drain', () => {
      if (this.#res !== res || !this.#waitingDrain) return;
      this.#waitingDrain = false;
      this.#regrant();
    });
    let ok = res.write(`retry: 1000\nevent: subscribed\ndata: ${hello}\n\n`);
    if (lastId !== undefined) {
      const i = this.#retained.findIndex((e) => e.id === lastId);
      if (i >= 0) this.#confirm(i + 1);
    }
    for (const e of this.#retained) ok = res.write(e.frame);
    for (const e of this.#queued) {
      ok = res.write(e.frame);
      this.#retain(e);
    }
    this.#queued = [];
    this.#afterWrite(ok);
    clearInterval(this.#hb);
    this.#hb = setInterval(() => {
      const r = this.#res;
      if (r !== undefined) r.write(`: heartbeat ${new Date().toISOString()}\n\n`);
    }, this.opts.heartbeatMs);
    this.#hb.unref();
  }

  /** Ends the session now: detaches the consumer (what it holds comes again elsewhere). */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#hb);
    clearTimeout(this.#grace);
    this.handle?.detach();
    const r = this.#res;
    this.#res = undefined;
    r?.end();
    this.opts.onEnd(this);
  }

  #deliver(list: readonly string[]): void {
    if (list.length === 0) return;
    const last = list[list.length - 1] as string;
    const id = /^\{"position":"([^"]+)"/.exec(last)?.[1] ?? '';
    const e: Event = { id, frame: frame(id, list), n: list.length };
    this.#owed += e.n;
    const res = this.#res;
    if (res === undefined) {
      this.#queued.push(e);
      return;
    }
    const ok = res.write(e.frame);
    this.#retain(e);
    this.#afterWrite(ok);
  }

  #afterWrite(ok: boolean): void {
    if (ok) this.#regrant();
    else this.#waitingDrain = true;
  }

  #regrant(): void {
    const n = this.#owed;
    this.#owed = 0;
    if (n > 0) this.handle?.credit(n);
  }

  /** Keeps at most `retain` deliveries of written events (older ones count as received). */
  #retain(e: Event): void {
    this.#retained.push(e);
    this.#retainedN += e.n;
    let drop = 0;
    let n = this.#retainedN;
    while (drop < this.#retained.length - 1 && n > this.opts.retain) n -= (this.#retained[drop++] as Event).n;
    if (drop > 0) this.#confirm(drop);
  }

  #confirm(count: number): void {
    for (const e of this.#retained.splice(0, count)) {
      this.#retainedN -= e.n;
      this.#history.push(e.id);
      this.#historySet.add(e.id);
    }
    while (this.#history.length > HISTORY) {
      const id = this.#history.shift() as string;
      if (!this.#history.includes(id)) this.#historySet.delete(id);
    }
  }

  #disconnected(): void {
    this.#res = undefined;
    this.#waitingDrain = false;
    clearInterval(this.#hb);
    if (this.#ended) return;
    this.#grace = setTimeout(() => this.end(), this.opts.resumeWindowMs);
    this.#grace.unref();
  }

  #closeFromEngine(code: ErrorCode, message: string): void {
    this.handle = undefined; // already detached by the engine
    const r = this.#res;
    if (r !== undefined) {
      const err = { code, message, retriable: ERROR_CODES[code].retriable };
      r.write(`event: error\ndata: ${JSON.stringify(err)}\n\n`);
    }
    this.end();
  }
}
