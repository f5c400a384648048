/**
 * Read-only views of the delivery engine's state (subscriptions issue items 6 and 7): health per
 * subscription for the API and Prometheus, and what the ledger (ADR 0011) needs of the live state.
 * Everything is computed when asked, from the runtimes' own state and counters; the only work on the
 * hot path is the resolution observer (a timestamp per ack, a small record per exception).
 */
import { formatPosition } from '../domain/position.ts';
import type { EventLog } from '../log/index.ts';
import type { ExplainVerdict } from '../routing/index.ts';
import type { DeliveryEngine } from './engine.ts';
import type { Outcome, RuntimeView, SubscriptionRuntime } from './runtime.ts';

/** Samples of the counters kept for rates (one a second). */
const RATE_WINDOW_S = 10;
/** Exceptions kept per subscription between two cursor commits (older ones are dropped, counted). */
const MAX_EXCEPTIONS = 65_536;

/** A resolution other than an ack (the ledger's exception record). */
export interface ResolutionException {
  readonly partition: number;
  readonly offset: number;
  readonly outcome: Exclude<Outcome, 'acked'>;
  /** Milliseconds since the epoch. */
  readonly at: number;
}

/** A connected consumer as the stats show it. */
export interface ConsumerView {
  readonly id: string;
  /** `pull` (REST fetch), or what the transport names on its sink (`ws`, `sse`, `webhook`), else `stream`. */
  readonly kind: string;
  readonly credits: number;
  readonly inFlight: number;
  readonly connectedAt: string;
}

/** Health of one subscription (GET /v1/subscriptions/{name}/stats). */
export interface SubscriptionStats {
  readonly name: string;
  readonly state: string;
  readonly lag: {
    /** Records between the ack floor and the log tail, over all partitions. */
    readonly records: number;
    /** Taken by the filter and read, not yet resolved (the window). */
    readonly pending: number;
    /** Records between the read position and the tail (not read yet, matching or not). */
    readonly unread: number;
    /** Age of the oldest unresolved decision read (or, with none, of the oldest unread record); null when none. */
    readonly oldestUnackedAgeMs: number | null;
    readonly oldestUnackedPosition: string | null;
  };
  readonly rates: {
    readonly windowSeconds: number;
    readonly deliveredPerSecond: number;
    readonly ackedPerSecond: number;
  };
  readonly inFlight: number;
  readonly held: number;
  readonly redeliveries: number;
  readonly deadLetters: number;
  readonly totals: Readonly<Record<string, number>>;
  readonly lastAckAt: string | null;
  readonly consumers: readonly ConsumerView[];
  readonly cursors: readonly { partition: number; next: number; ackFloor: number; pending: number }[];
  /** What `drop` retention policies removed before this subscription acknowledged it (ADR 0017). */
  readonly retentionLost: {
    /** Pending entries lost since this process started (unread ones are not counted). */
    readonly pending: number;
    /** The latest losses (at most 100): positions [from, to) per partition, ISO time. */
    readonly ranges: readonly { partition: number; from: string; to: string; pending: number; at: string }[];
  };
}

/** The numbers Prometheus gets per subscription at scrape time. */
export interface SubscriptionSample {
  readonly name: string;
  readonly lag: number;
  readonly inFlight: number;
  readonly redelivered: number;
  readonly deadLettered: number;
  readonly delivered: number;
  readonly acked: number;
}

/** Where one decision stands in one subscription's live state. */
export type LiveEntryState =
  | { readonly kind: 'unread' }
  | { readonly kind: 'resolved' }
  | {
      readonly kind: 'pending';
      /** waiting, out (delivered, unacked) or held. */
      readonly status: string;
      readonly deliveryCount: number;
    };

interface Track {
  readonly rt: SubscriptionRuntime;
  lastAckAt: number | undefined;
  exceptions: ResolutionException[];
  droppedExceptions: number;
  /** [delivered, acked] one a second, newest last. */
  readonly samples: [number, number][];
}

/** Reads the engine's live state; owns the resolution observers and the rate samples. */
export class DeliveryIntrospect {
  readonly #tracks = new Map<string, Track>();
  #timer: NodeJS.Timeout | undefined;
  /** Told of each runtime when first watched (within 250 ms of its creation): the ledger seeds from it. */
  onWatch: ((name: string, view: RuntimeView) => void) | undefined;

  constructor(
    private readonly engine: DeliveryEngine,
    private readonly log: EventLog,
  ) {}

  /** Starts sampling counters (one a second) and watching new subscriptions. */
  start(): void {
    this.#sync();
    let n = 0;
    this.#timer = setInterval(() => {
      this.#sync();
      if (++n % 4 !== 0) return;
      for (const t of this.#tracks.values()) {
        t.samples.push([t.rt.counters.delivered, t.rt.counters.acked]);
        if (t.samples.length > RATE_WINDOW_S + 1) t.samples.shift();
      }
    }, 250);
    this.#timer.unref();
  }

  /** Stops sampling. */
  stop(): void {
    clearInterval(this.#timer);
  }

  /** Attaches observers to runtimes not seen yet and forgets removed ones. */
  #sync(): void {
    const seen = new Set<string>();
    for (const rt of this.engine.runtimes()) {
      seen.add(rt.spec.name);
      const t = this.#tracks.get(rt.spec.name);
      if (t !== undefined && t.rt === rt) continue;
      this.#watch(rt);
    }
    for (const name of this.#tracks.keys()) if (!seen.has(name)) this.#tracks.delete(name);
  }

  #watch(rt: SubscriptionRuntime): Track {
    const t: Track = { rt, lastAckAt: undefined, exceptions: [], droppedExceptions: 0, samples: [] };
    this.#tracks.set(rt.spec.name, t);
    this.onWatch?.(rt.spec.name, rt.inspect());
    const prev = rt.observer;
    rt.observer = (partition, offset, outcome) => {
      prev?.(partition, offset, outcome);
      if (outcome === 'acked') {
        t.lastAckAt = Date.now();
        return;
      }
      if (t.exceptions.length >= MAX_EXCEPTIONS) t.droppedExceptions++;
      else t.exceptions.push({ partition, offset, outcome, at: Date.now() });
    };
    return t;
  }

  #track(name: string): Track | undefined {
    const rt = this.engine.get(name);
    if (rt === undefined) return undefined;
    const t = this.#tracks.get(name);
    return t !== undefined && t.rt === rt ? t : this.#watch(rt);
  }

  /** Names of the running subscriptions. */
  names(): string[] {
    return [...this.engine.runtimes()].map((rt) => rt.spec.name);
  }

  /** Exceptions recorded since the last call for a subscription (the ledger takes them at each commit). */
  takeExceptions(name: string): ResolutionException[] {
    const t = this.#track(name);
    if (t === undefined) return [];
    const out = t.exceptions;
    t.exceptions = [];
    return out;
  }

  /** Health of one subscription, or undefined when it is not running here. */
  async stats(name: string): Promise<SubscriptionStats | undefined> {
    const t = this.#track(name);
    if (t === undefined) return undefined;
    const rt = t.rt;
    const view = rt.inspect();
    const ext = this.log.extents();
    let pending = 0;
    let held = 0;
    let unread = 0;
    let oldest: { partition: number; offset: number; ts?: number } | undefined;
    const cursors = view.parts.map((p) => {
      let floor = p.next;
      for (const [o, e] of p.pending) {
        if (o < floor) floor = o;
        if (e.status === 'held') held++;
      }
      pending += p.pending.size;
      unread += Math.max(0, (ext[p.partition]?.next ?? 0) - p.next);
      return { partition: p.partition, next: p.next, ackFloor: floor, pending: p.pending.size };
    });
    // The oldest unresolved record of each partition is at its ack floor (offsets ascend with time).
    for (const c of cursors) {
      const tail = ext[c.partition]?.next ?? 0;
      if (c.ackFloor >= tail) continue;
      const r = await this.log.readOne(c.partition, c.ackFloor);
      if (r === undefined) continue;
      if (oldest === undefined || (oldest.ts ?? Infinity) > r.timestamp)
        oldest = { partition: c.partition, offset: c.ackFloor, ts: r.timestamp };
    }
    const consumers: ConsumerView[] = [];
    for (const c of view.consumers) {
      const kind = (c.sink as { kind?: unknown }).kind;
      consumers.push({
        id: c.id,
        kind: typeof kind === 'string' ? kind : c.id === 'rest-pull' ? 'pull' : 'stream',
        credits: c.credits,
        inFlight: c.outstanding,
        connectedAt: new Date(c.since).toISOString(),
      });
    }
    const k = rt.counters;
    const rates = this.#rates(t);
    return {
      name,
      state: rt.spec.state,
      lag: {
        records: rt.lag(),
        pending,
        unread,
        oldestUnackedAgeMs: oldest?.ts === undefined ? null : Math.max(0, Date.now() - oldest.ts),
        oldestUnackedPosition: oldest === undefined ? null : formatPosition(oldest.partition, oldest.offset),
      },
      rates,
      inFlight: view.outstanding,
      held,
      redeliveries: k.redelivered,
      deadLetters: k.deadLettered,
      totals: { ...k },
      lastAckAt: t.lastAckAt === undefined ? null : new Date(t.lastAckAt).toISOString(),
      consumers,
      cursors,
      retentionLost: {
        pending: k.retentionLost,
        ranges: rt.losses.map((l) => ({
          partition: l.partition,
          from: formatPosition(l.partition, l.from),
          to: formatPosition(l.partition, l.to),
          pending: l.pending,
          at: new Date(l.at).toISOString(),
        })),
      },
    };
  }

  #rates(t: Track): SubscriptionStats['rates'] {
    const first = t.samples[0];
    const now: [number, number] = [t.rt.counters.delivered, t.rt.counters.acked];
    if (first === undefined) return { windowSeconds: 0, deliveredPerSecond: 0, ackedPerSecond: 0 };
    const secs = t.samples.length; // samples are one second apart; the newest is at most 1 s old
    const r = (a: number, b: number) => Math.round(((a - b) / secs) * 100) / 100;
    return {
      windowSeconds: secs,
      deliveredPerSecond: r(now[0], first[0]),
      ackedPerSecond: r(now[1], first[1]),
    };
  }

  /** One sample per subscription for Prometheus (synchronous, cheap: no log reads). */
  samples(): SubscriptionSample[] {
    const out: SubscriptionSample[] = [];
    for (const rt of this.engine.runtimes()) {
      const k = rt.counters;
      out.push({
        name: rt.spec.name,
        lag: rt.lag(),
        inFlight: rt.inspect().outstanding,
        redelivered: k.redelivered,
        deadLettered: k.deadLettered,
        delivered: k.delivered,
        acked: k.acked,
      });
    }
    return out;
  }

  /** A summary of every subscription for GET /v1/status. */
  summary(): {
    count: number;
    consumers: number;
    lagRecords: number;
    inFlight: number;
    deadLetters: number;
    subscriptions: { name: string; state: string; lag: number; inFlight: number; consumers: number }[];
  } {
    const subs = [];
    let consumers = 0;
    let lag = 0;
    let inFlight = 0;
    let dead = 0;
    for (const rt of this.engine.runtimes()) {
      const v = rt.inspect();
      let n = 0;
      for (const _c of v.consumers) n++;
      const l = rt.lag();
      consumers += n;
      lag += l;
      inFlight += v.outstanding;
      dead += rt.counters.deadLettered;
      subs.push({ name: rt.spec.name, state: rt.spec.state, lag: l, inFlight: v.outstanding, consumers: n });
    }
    return {
      count: subs.length,
      consumers,
      lagRecords: lag,
      inFlight,
      deadLetters: dead,
      subscriptions: subs,
    };
  }

  /** Where a record stands in a subscription's live state (undefined: not running here). */
  live(name: string, partition: number, offset: number): LiveEntryState | undefined {
    const rt = this.engine.get(name);
    const part = rt?.inspect().parts[partition];
    if (rt === undefined || part === undefined) return undefined;
    const e = part.pending.get(offset);
    if (e !== undefined) return { kind: 'pending', status: e.status, deliveryCount: e.deliveryCount };
    return offset >= part.next ? { kind: 'unread' } : { kind: 'resolved' };
  }

  /** Which subscriptions take or filter out a decision now (the engine's matcher). */
  explain(decision: unknown, topics: readonly string[]): ExplainVerdict[] {
    return this.engine.explain(decision, topics);
  }

  /** The definition of a running subscription. */
  spec(name: string): SubscriptionRuntime['spec'] | undefined {
    return this.engine.get(name)?.spec;
  }

  /** Writes dead letters and cursors now (so that the ledger reads what the engine holds). */
  flush(): Promise<void> {
    return this.engine.commit();
  }
}
