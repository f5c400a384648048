/**
 * One webhook endpoint as a consumer of the delivery engine (ADR 0010). The engine sends it at most
 * `maxConcurrency x batchSize` deliveries (its credits); it POSTs them in batches of `batchSize`, at most
 * `maxConcurrency` requests at a time, never two requests holding the same ordering lane (key, or
 * partition), so per-key order holds. A 2xx acks the batch. A failure (status, timeout, network) nacks
 * the batch with a backoff delay (exponential, full jitter), then lets go of everything else it holds
 * (detach: no failure counted) and comes back after the delay once its requests in flight have ended:
 * a failing endpoint is probed, not flooded, and the engine owns redelivery and dead letters.
 */
import type { ConsumerHandle, ConsumerSink } from '../../delivery/index.ts';
import type { WebhookRecord } from '../../state/webhooks-port.ts';
import { messageId, secretKey, sign } from './signing.ts';

interface Item {
  readonly text: string;
  readonly position: string;
  readonly lane: string | undefined;
}

/** What a dispatcher needs from its owner. */
export interface DispatcherDeps {
  /** Attaches a consumer to the endpoint's subscription (credits granted by the dispatcher). */
  attach(sink: ConsumerSink): Promise<ConsumerHandle>;
  /** The subscription's ordering (`key`, `partition`, `none`) and ack timeout. */
  readonly ordering: () => string;
  /** Called once when the endpoint crosses its disable policy. */
  onDisable(reason: string): void;
  /** The subscription is gone or the consumer was closed for good. */
  onClosed(code: string): void;
  readonly onError: (e: unknown) => void;
}

/** Live health of an endpoint (shown by GET). */
export interface WebhookHealth {
  requests: number;
  successes: number;
  failures: number;
  delivered: number;
  consecutiveFailures: number;
  failingSince: string | null;
  lastSuccessAt: string | null;
  lastFailureAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  lastLatencyMs: number | null;
  avgLatencyMs: number | null;
  inFlight: number;
  buffered: number;
  nextAttemptAt: string | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Pushes one endpoint's deliveries. */
export class Dispatcher {
  readonly health: WebhookHealth = {
    requests: 0,
    successes: 0,
    failures: 0,
    delivered: 0,
    consecutiveFailures: 0,
    failingSince: null,
    lastSuccessAt: null,
    lastFailureAt: null,
    lastStatus: null,
    lastError: null,
    lastLatencyMs: null,
    avgLatencyMs: null,
    inFlight: 0,
    buffered: 0,
    nextAttemptAt: null,
  };
  #rec: WebhookRecord;
  readonly #key: Buffer;
  #handle: ConsumerHandle | undefined;
  #gen = 0;
  #buf: Item[] = [];
  readonly #busy = new Set<string>();
  #inFlight = 0;
  #pauseUntil = 0;
  #timer: NodeJS.Timeout | undefined;
  #attaching = false;
  #running = false;
  #failStart = 0;
  /** Positions of a failed request -> its message id, so a retry of the same batch keeps its id. */
  readonly #prevIds = new Map<string, string>();
  readonly #idSizes = new Map<string, number>();
  readonly #aborts = new Set<AbortController>();
  readonly #idle: (() => void)[] = [];

  constructor(
    rec: WebhookRecord,
    private readonly deps: DispatcherDeps,
  ) {
    this.#rec = rec;
    this.#key = secretKey(rec.secret) ?? Buffer.alloc(32);
  }

  get record(): WebhookRecord {
    return this.#rec;
  }

  /** Starts pushing (attaches a consumer). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#pauseUntil = 0;
    this.#schedule(0);
  }

  /** Stops pushing: detaches, waits up to `graceMs` for requests in flight, then aborts them. */
  async stop(graceMs = 0): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#release();
    if (this.#inFlight > 0 && graceMs > 0)
      await Promise.race([
        new Promise<void>((r) => this.#idle.push(r)),
        new Promise((r) => setTimeout(r, graceMs).unref()),
      ]);
    for (const a of this.#aborts) a.abort();
  }

  /** Resets the failure streak (re-enable). */
  resetHealth(rec: WebhookRecord): void {
    this.#rec = rec;
    this.health.consecutiveFailures = 0;
    this.health.failingSince = null;
    this.health.nextAttemptAt = null;
    this.#failStart = 0;
  }

  #release(): void {
    const h = this.#handle;
    this.#handle = undefined;
    this.#gen++;
    this.#buf = [];
    this.#busy.clear();
    this.health.buffered = 0;
    h?.detach();
  }

  #schedule(at: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#wake(), Math.max(0, at - Date.now()) + 1);
    this.#timer.unref();
  }

  #wake(): void {
    if (!this.#running) return;
    if (this.#handle === undefined) {
      if (this.#attaching || this.#inFlight > 0) return; // the last request to end wakes it again
      if (Date.now() < this.#pauseUntil) return this.#schedule(this.#pauseUntil); // timers may fire early
      this.#attach();
      return;
    }
    this.#kick();
  }

  #attach(): void {
    this.#attaching = true;
    const gen = this.#gen;
    const sink: ConsumerSink = {
      send: (d) => {
        if (gen === this.#gen) this.#take(d);
      },
      close: (code) => {
        if (gen !== this.#gen) return;
        this.#handle = undefined;
        this.#gen++;
        this.#buf = [];
        this.#busy.clear();
        this.deps.onClosed(code);
      },
    };
    this.deps.attach(sink).then(
      (h) => {
        this.#attaching = false;
        if (!this.#running || gen !== this.#gen) return h.detach();
        this.#handle = h;
        this.health.nextAttemptAt = null;
        h.credit(this.#rec.maxConcurrency * this.#rec.batchSize);
      },
      (e: unknown) => {
        this.#attaching = false;
        this.deps.onClosed((e as { code?: string }).code ?? 'INTERNAL');
      },
    );
  }

  #take(list: readonly string[]): void {
    const ordering = this.deps.ordering();
    for (const text of list) {
      try {
        const d = JSON.parse(text) as { position: string; key: string };
        const lane =
          ordering === 'none'
            ? undefined
            : ordering === 'partition'
              ? `p${d.position.split(':')[0]}`
              : `k${d.key}`;
        this.#buf.push({ text, position: d.position, lane });
      } catch (e) {
        this.deps.onError(e);
      }
    }
    this.health.buffered = this.#buf.length;
    this.#kick();
  }

  /** Starts requests while there is room, respecting lanes. */
  #kick(): void {
    while (this.#running && this.#handle !== undefined && this.#inFlight < this.#rec.maxConcurrency) {
      const batch = this.#form();
      if (batch === undefined) break;
      void this.#post(batch.items, batch.id, this.#gen);
    }
    this.health.buffered = this.#buf.length;
  }

  #form(): { items: Item[]; id: string } | undefined {
    if (this.#buf.length === 0) return undefined;
    // A complete retried batch goes first, again under its message id.
    const groups = new Map<string, number>();
    for (const it of this.#buf) {
      const id = this.#prevIds.get(it.position);
      if (id !== undefined && !(it.lane !== undefined && this.#busy.has(it.lane)))
        groups.set(id, (groups.get(id) ?? 0) + 1);
    }
    let want: string | undefined;
    for (const [id, n] of groups) if (n === this.#idSizes.get(id)) want = want ?? id;
    const blocked = new Set(this.#busy);
    const items: Item[] = [];
    const rest: Item[] = [];
    for (const it of this.#buf) {
      const fits =
        items.length < this.#rec.batchSize &&
        (it.lane === undefined || !blocked.has(it.lane)) &&
        (want === undefined || this.#prevIds.get(it.position) === want);
      if (fits) items.push(it);
      else {
        rest.push(it);
        if (it.lane !== undefined) blocked.add(it.lane); // later items of the lane wait behind it
      }
    }
    if (items.length === 0) return undefined;
    this.#buf = rest;
    for (const it of items) if (it.lane !== undefined) this.#busy.add(it.lane);
    return { items, id: want ?? messageId() };
  }

  async #post(items: Item[], id: string, gen: number): Promise<void> {
    const handle = this.#handle;
    this.#inFlight++;
    this.health.inFlight = this.#inFlight;
    this.health.requests++;
    const ts = Math.floor(Date.now() / 1000);
    const body = `{"type":"cds.deliveries","timestamp":"${iso(ts * 1000)}","data":{"subscription":${JSON.stringify(
      this.#rec.subscription,
    )},"deliveries":[${items.map((i) => i.text).join(',')}]}}`;
    const ac = new AbortController();
    this.#aborts.add(ac);
    const timer = setTimeout(() => ac.abort(), this.#rec.timeoutMs);
    const t0 = performance.now();
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await fetch(this.#rec.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'cds-webhooks/1',
          'webhook-id': id,
          'webhook-timestamp': String(ts),
          'webhook-signature': sign(this.#key, id, ts, body),
        },
        body,
        redirect: 'manual',
        signal: ac.signal,
      });
      status = res.status;
      await res.body?.cancel().catch(() => undefined);
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (e) {
      error = ac.signal.aborted ? `timeout after ${this.#rec.timeoutMs} ms` : describe(e);
    } finally {
      clearTimeout(timer);
      this.#aborts.delete(ac);
    }
    const latency = Math.round(performance.now() - t0);
    this.#inFlight--;
    const h = this.health;
    h.inFlight = this.#inFlight;
    h.lastStatus = status;
    h.lastLatencyMs = latency;
    h.avgLatencyMs = h.avgLatencyMs === null ? latency : Math.round(h.avgLatencyMs * 0.8 + latency * 0.2);
    for (const it of items) if (it.lane !== undefined && gen === this.#gen) this.#busy.delete(it.lane);
    const positions = items.map((i) => i.position);
    if (error === null) this.#succeeded(positions, id, gen, handle);
    else this.#failed(positions, id, gen, handle, error);
    if (this.#inFlight === 0) for (const r of this.#idle.splice(0)) r();
    this.#wake();
  }

  #succeeded(positions: string[], id: string, gen: number, handle: ConsumerHandle | undefined): void {
    const h = this.health;
    h.successes++;
    h.delivered += positions.length;
    h.lastSuccessAt = iso(Date.now());
    h.consecutiveFailures = 0;
    h.failingSince = null;
    this.#failStart = 0;
    for (const p of positions) this.#prevIds.delete(p);
    this.#idSizes.delete(id);
    // Acks concern positions, not the consumer: they hold even after this consumer let go.
    try {
      handle?.ack(positions);
    } catch (e) {
      this.deps.onError(e);
    }
    if (gen === this.#gen) handle?.credit(positions.length);
  }

  #failed(
    positions: string[],
    id: string,
    gen: number,
    handle: ConsumerHandle | undefined,
    error: string,
  ): void {
    const h = this.health;
    const now = Date.now();
    h.failures++;
    h.lastFailureAt = iso(now);
    h.lastError = error;
    h.consecutiveFailures++;
    if (this.#failStart === 0) this.#failStart = now;
    h.failingSince = iso(this.#failStart);
    if (gen !== this.#gen || handle === undefined) return; // this consumer already let go of them
    const b = this.#rec.backoff;
    const cap = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(30, h.consecutiveFailures - 1));
    const delay = Math.max(1, Math.floor(Math.random() * cap)); // full jitter
    for (const p of positions) this.#prevIds.set(p, id);
    this.#idSizes.set(id, positions.length);
    this.#trimIds();
    try {
      handle.nack(positions, delay);
    } catch (e) {
      this.deps.onError(e);
    }
    this.#release();
    this.#pauseUntil = now + delay + 30; // the nacked batch is due again when the consumer is back
    h.nextAttemptAt = iso(this.#pauseUntil);
    const d = this.#rec.disableAfter;
    if (h.consecutiveFailures >= d.failures && now - this.#failStart >= d.periodMs) {
      this.#running = false;
      h.nextAttemptAt = null;
      this.deps.onDisable(
        `${h.consecutiveFailures} consecutive failures since ${h.failingSince} (last: ${error})`,
      );
      return;
    }
    this.#schedule(this.#pauseUntil);
  }

  #trimIds(): void {
    while (this.#prevIds.size > 100_000) {
      const first = this.#prevIds.keys().next();
      if (first.done === true) break;
      this.#prevIds.delete(first.value);
    }
    while (this.#idSizes.size > 10_000) {
      const first = this.#idSizes.keys().next();
      if (first.done === true) break;
      this.#idSizes.delete(first.value);
    }
  }
}

function describe(e: unknown): string {
  const c = (e as { cause?: { code?: string; message?: string } }).cause;
  return c?.code ?? c?.message ?? (e as Error).message ?? String(e);
}
