/**
 * One subscription's delivery state and dispatch (ADR 0009): per partition the read position and
 * the window of pending entries; per ordering key the queue of waiting entries and the consumer that
 * owns it; leases with ack timeouts; redelivery with backoff; dead letters; slow-consumer policies.
 * Everything runs on the main thread; the only awaits are log reads and transforms.
 */
import { createHash } from 'node:crypto';
import type jsonata from 'jsonata';
import { formatPosition, parsePosition } from '../domain/position.ts';
import { isCdsError, type ErrorCode } from '../errors/index.ts';
import type { EventLog } from '../log/index.ts';
import {
  analyseFilter,
  anyTopicPasses,
  filterHolds,
  topicTest,
  type AnalysedFilter,
  type TopicTest,
} from '../routing/index.ts';
import type { CursorSnapshot, DeadLetter } from '../state/subscriptions-port.ts';
import { tryCompileTransform, type SubscriptionSpec } from '../subscriptions/spec.ts';
import { decodeRecord, encodeDelivery, type DecodedRecord } from './decoded.ts';
import type {
  AckResult,
  ConsumerHandle,
  ConsumerNotice,
  ConsumerSink,
  SubscriptionCounters,
} from './types.ts';

const READ_BATCH = 256;
const MAX_ANCHORS = 65_536;
const EXPEDITED = 10;

/** How a pending entry was resolved. */
export type Outcome =
  'acked' | 'filtered' | 'expired' | 'superseded' | 'deadLettered' | 'skipped' | 'retentionLost';

/** Records a `drop` retention policy removed before this subscription acknowledged them (ADR 0017). */
export interface RetentionLoss {
  readonly partition: number;
  /** Offsets [from, to): the ack floor then, and where the subscription goes on. */
  readonly from: number;
  readonly to: number;
  /** Pending entries among them (read, not acknowledged); unread ones are not counted. */
  readonly pending: number;
  /** Milliseconds since the epoch. */
  readonly at: number;
}

/** Losses kept for the stats (the ledger keeps them all). */
const MAX_LOSSES = 100;

interface Entry {
  readonly rec: DecodedRecord;
  readonly ks: KeyState;
  readonly expedited: boolean;
  status: 'waiting' | 'out' | 'held';
  deliveryCount: number;
  consumer: Consumer | undefined;
  lease: number;
  notBefore: number;
  /** Offset of the previous delivered decision of the key (null: none), undefined before the first delivery. */
  prev: number | null | undefined;
  payload: string | undefined;
  payloadVersion: number;
  preparing: boolean;
  /** Replayed from the dead-letter queue (not part of the window). */
  replay: boolean;
}

interface KeyState {
  readonly id: string;
  readonly queue: Entry[];
  out: number;
  owner: Consumer | undefined;
}

interface Part {
  readonly partition: number;
  next: number;
  live: boolean;
  reading: boolean;
  readonly pending: Map<number, Entry>;
  readonly lastDelivered: Map<string, number>;
  /** Per key, the consumer the last element of its prevPosition chain went to (the `handover` flag). */
  readonly lastTo: Map<string, Consumer>;
}

interface Consumer {
  readonly id: string;
  readonly sink: ConsumerSink;
  readonly since: number;
  credits: number;
  outstanding: number;
  alive: boolean;
}

interface Lease {
  readonly e: Entry;
  readonly id: number;
  readonly deadline: number;
}

/** What a runtime needs from the engine. */
export interface RuntimeDeps {
  readonly log: EventLog;
  readonly epoch: string;
  /** The tail reader's next offset of a partition. */
  readonly tailNext: (partition: number) => number;
  readonly onError: (e: unknown) => void;
  /**
   * Whether this instance may dispatch now (cluster mode: its lease is valid by its own monotonic
   * clock, ADR 0015); checked before every dispatch, so nothing is sent once the lease is overdue.
   */
  readonly mayDispatch?: () => boolean;
}

/** What introspection reads of a runtime (delivery/introspect.ts, the ledger); never mutated there. */
export interface RuntimeView {
  readonly parts: readonly {
    readonly partition: number;
    readonly next: number;
    readonly pending: ReadonlyMap<
      number,
      { readonly rec: DecodedRecord; readonly status: string; readonly deliveryCount: number }
    >;
  }[];
  readonly consumers: Iterable<{
    readonly id: string;
    readonly sink: ConsumerSink;
    readonly since: number;
    readonly credits: number;
    readonly outstanding: number;
  }>;
  readonly outstanding: number;
}

let consumerSeq = 0;

/** The live state of one subscription. */
export class SubscriptionRuntime {
  spec: SubscriptionSpec;
  readonly counters: SubscriptionCounters = {
    delivered: 0,
    redelivered: 0,
    acked: 0,
    nacked: 0,
    filtered: 0,
    expired: 0,
    superseded: 0,
    deadLettered: 0,
    transformFailures: 0,
    skipped: 0,
    ackTimeouts: 0,
    retentionLost: 0,
  };
  /** The latest retention losses, oldest first (at most MAX_LOSSES). */
  readonly losses: RetentionLoss[] = [];
  /** Set when something to persist changed since the last commit. */
  dirty = false;
  /** Observes each resolution (introspection, the ledger); it never changes what happens. */
  observer: ((partition: number, offset: number, outcome: Outcome) => void) | undefined;
  readonly #deps: RuntimeDeps;
  readonly #epochJson: string;
  readonly #parts: Part[] = [];
  readonly #keys = new Map<string, KeyState>();
  readonly #buckets: Set<KeyState>[] = Array.from({ length: EXPEDITED + 1 }, () => new Set());
  readonly #delayed: { ks: KeyState; at: number }[] = [];
  readonly #replays = new Map<string, Entry>();
  readonly #consumers = new Map<string, Consumer>();
  #leases: Lease[] = [];
  #leaseSeq = 0;
  #outstanding = 0;
  #gen = 0;
  #stopped = false;
  #pumpScheduled = false;
  #filter: AnalysedFilter | undefined;
  #topicTests: readonly TopicTest[] = [];
  #transform: ReturnType<typeof jsonata> | undefined;
  #transformVersion = 0;
  #deadLetters: DeadLetter[] = [];

  constructor(spec: SubscriptionSpec, deps: RuntimeDeps, cursors: readonly CursorSnapshot[]) {
    this.spec = spec;
    this.#deps = deps;
    this.#epochJson = JSON.stringify(deps.epoch);
    this.#compile(spec);
    const byP = new Map(cursors.map((c) => [c.partition, c]));
    for (let p = 0; p < deps.log.partitions; p++) {
      const c = byP.get(p);
      const ext = deps.log.extents()[p];
      this.#parts.push({
        partition: p,
        next: c?.next ?? ext?.next ?? 0,
        live: false,
        reading: false,
        pending: new Map(),
        lastDelivered: new Map(c?.anchors.map(([k, o]) => [k, o]) ?? []),
        lastTo: new Map(),
      });
    }
    this.#recovering = cursors.filter((c) => c.pending.length > 0);
  }

  #recovering: readonly CursorSnapshot[];

  /** Starts reading: re-reads the pending entries of the last commit, then catches up. */
  async start(): Promise<void> {
    const gen = this.#gen;
    for (const c of this.#recovering) {
      for (const [offset, count, prev] of c.pending) {
        const r = await this.#deps.log.readOne(c.partition, offset);
        if (gen !== this.#gen || this.#stopped) return;
        const d = r === undefined ? undefined : decodeRecord(r);
        if (d === undefined || !this.#matches(d)) continue;
        this.#take(d, count);
        const e = this.#parts[c.partition]?.pending.get(offset);
        if (e !== undefined && prev !== undefined) e.prev = prev;
      }
    }
    this.#recovering = [];
    this.#schedulePump();
    for (const part of this.#parts) void this.#catchUp(part);
  }

  /** Stops everything (delete or shutdown); consumers are closed with `code`. */
  stop(code: ErrorCode, message: string): void {
    this.#stopped = true;
    this.#gen++;
    for (const c of [...this.#consumers.values()]) {
      this.#detach(c);
      c.sink.close(code, message);
    }
  }

  // ------------------------------------------------------------ definition

  #compile(spec: SubscriptionSpec): void {
    this.#topicTests = spec.topics.map(topicTest);
    this.#filter = spec.filter === undefined ? undefined : analyseFilter(spec.filter, '/filter');
    const t = spec.transform === undefined ? undefined : tryCompileTransform(spec.transform);
    this.#transform = t !== undefined && typeof t === 'object' && 'evaluate' in t ? t : undefined;
    this.#transformVersion++;
  }

  /** Applies a new definition live (filter, transform, policies); waiting entries are re-filtered. */
  update(spec: SubscriptionSpec): void {
    const filterChanged =
      spec.filter !== this.spec.filter || spec.topics.join(' ') !== this.spec.topics.join(' ');
    this.spec = spec;
    this.#compile(spec);
    if (filterChanged) {
      for (const part of this.#parts)
        for (const e of [...part.pending.values()])
          if (e.status === 'waiting' && e.deliveryCount === 0 && !this.#matches(e.rec))
            this.#resolve(e, 'filtered');
    }
    if (spec.state === 'active') for (const part of this.#parts) void this.#catchUp(part);
    this.#schedulePump();
  }

  #matches(d: DecodedRecord): boolean {
    if (!anyTopicPasses(this.#topicTests, d.topics)) return false;
    return this.#filter === undefined || filterHolds(this.#filter, d.decision);
  }

  // ------------------------------------------------------------ reading

  #windowFull(): boolean {
    let n = 0;
    for (const p of this.#parts) n += p.pending.size;
    return n >= this.spec.windowSize;
  }

  #accepting(): boolean {
    return (
      !this.#stopped && this.spec.state !== 'draining' && this.#recovering.length === 0 && !this.#windowFull()
    );
  }

  /** Called by the engine with a tail batch when this subscription is live on its partition. */
  onTail(partition: number, from: number, to: number, recs: readonly DecodedRecord[] | undefined): void {
    const part = this.#parts[partition];
    if (part === undefined || !part.live || part.next !== from) return;
    if (!this.#accepting()) {
      part.live = false;
      return;
    }
    if (recs !== undefined) for (const d of recs) this.#take(d, 0);
    part.next = to;
    this.dirty = true;
    this.#schedulePump();
  }

  /** Whether this subscription is live on a partition (the engine hands it tail batches). */
  isLive(partition: number): boolean {
    return this.#parts[partition]?.live === true;
  }

  async #catchUp(part: Part): Promise<void> {
    if (part.reading || part.live) return;
    part.reading = true;
    const gen = this.#gen;
    try {
      while (gen === this.#gen && this.#accepting()) {
        const tail = this.#deps.tailNext(part.partition);
        if (part.next >= tail) {
          part.next = tail;
          part.live = true;
          return;
        }
        const n = Math.min(READ_BATCH, tail - part.next);
        const recs = await this.#deps.log.read(part.partition, part.next, n);
        if (gen !== this.#gen) return;
        if (recs.length === 0) {
          const first = this.#deps.log.extents()[part.partition]?.first ?? part.next;
          if (first > part.next) part.next = first;
          else return;
          continue;
        }
        for (const r of recs) {
          if (r.offset < part.next) continue; // retention moved the cursor past it meanwhile
          const d = decodeRecord(r);
          if (d !== undefined && this.#matches(d)) this.#take(d, 0);
          part.next = r.offset + 1;
        }
        this.dirty = true;
        this.#schedulePump();
      }
    } catch (e) {
      this.#deps.onError(e);
    } finally {
      part.reading = false;
    }
  }

  #resumeReading(): void {
    if (this.#stopped) return;
    for (const part of this.#parts) if (!part.live && !part.reading) void this.#catchUp(part);
  }

  // ------------------------------------------------------------ entries and keys

  #orderKey(d: DecodedRecord): string {
    if (this.spec.ordering === 'key') return d.key;
    if (this.spec.ordering === 'partition') return `#p${d.partition}`;
    return `#o${d.position}`;
  }

  #keyState(id: string): KeyState {
    let ks = this.#keys.get(id);
    if (ks === undefined) this.#keys.set(id, (ks = { id, queue: [], out: 0, owner: undefined }));
    return ks;
  }

  #take(d: DecodedRecord, deliveryCount: number, replay = false): void {
    const part = this.#parts[d.partition];
    if (part === undefined) return;
    if (!replay && d.expiresAt !== undefined && d.expiresAt <= Date.now() && !this.spec.includeExpired) {
      this.counters.expired++;
      return;
    }
    const expedited = d.type === 'halt' || d.type === 'cancel';
    const found = this.#keys.get(this.#orderKey(d));
    if (found !== undefined && (expedited || this.spec.slowConsumer.policy === 'conflate')) {
      // A waiting, never delivered, earlier revision of the same decision is not delivered.
      for (const o of [...found.queue]) {
        if (
          o.status === 'waiting' &&
          o.deliveryCount === 0 &&
          o.rec.decisionId === d.decisionId &&
          o.rec.revision < d.revision
        )
          this.#resolve(o, 'superseded');
      }
    }
    const ks = this.#keyState(this.#orderKey(d)); // after superseding, which may drop an emptied key
    const e: Entry = {
      rec: d,
      ks,
      expedited,
      status: 'waiting',
      deliveryCount,
      consumer: undefined,
      lease: 0,
      // A routing rule's hold: the entry (and so its key, whose order it keeps) waits until then.
      notBefore: replay ? 0 : (d.holdUntil ?? 0),
      prev: undefined,
      payload: undefined,
      payloadVersion: -1,
      preparing: false,
      replay,
    };
    if (replay) this.#replays.set(d.position, e);
    else part.pending.set(d.offset, e);
    this.#enqueue(e);
  }

  #before(a: Entry, b: Entry): boolean {
    if (a.expedited !== b.expedited) return a.expedited;
    if (a.replay !== b.replay) return a.replay;
    return a.rec.offset < b.rec.offset;
  }

  #enqueue(e: Entry): void {
    const q = e.ks.queue;
    let i = q.length;
    // A held (poisoned) entry stops its key, except for the kill switch: an expedited entry overtakes it.
    while (
      i > 0 &&
      this.#before(e, q[i - 1] as Entry) &&
      (e.expedited || (q[i - 1] as Entry).status !== 'held')
    )
      i--;
    q.splice(i, 0, e);
    if (i === 0) this.#ready(e.ks);
  }

  #priorityOf(e: Entry): number {
    if (e.expedited) return EXPEDITED;
    return this.spec.ordering === 'partition' ? 0 : e.rec.priority;
  }

  #ready(ks: KeyState): void {
    const head = ks.queue[0];
    if (head === undefined || head.status === 'held') return;
    this.#buckets[this.#priorityOf(head)]?.add(ks);
    this.#schedulePump();
  }

  #unqueue(e: Entry): void {
    const q = e.ks.queue;
    const i = q.indexOf(e);
    if (i >= 0) q.splice(i, 1);
    if (i === 0) this.#ready(e.ks);
  }

  #release(e: Entry): void {
    if (e.status !== 'out') return;
    const c = e.consumer;
    e.consumer = undefined;
    e.status = 'waiting';
    e.ks.out--;
    if (c !== undefined && this.spec.ackPolicy === 'explicit') {
      c.outstanding--;
      this.#outstanding--;
    }
    if (e.ks.out === 0) e.ks.owner = undefined;
  }

  #resolve(e: Entry, outcome: Outcome): void {
    this.#release(e);
    if (e.status === 'waiting' || e.status === 'held') this.#unqueue(e);
    if (e.replay) this.#replays.delete(e.rec.position);
    else this.#parts[e.rec.partition]?.pending.delete(e.rec.offset);
    this.counters[outcome]++;
    this.observer?.(e.rec.partition, e.rec.offset, outcome);
    if (e.replay && outcome === 'acked')
      this.#pendingDlRemovals.push({ partition: e.rec.partition, offset: e.rec.offset });
    this.dirty = true;
    if (this.#keys.get(e.ks.id) === e.ks && e.ks.queue.length === 0 && e.ks.out === 0)
      this.#keys.delete(e.ks.id);
    if (e.ks.out === 0 && e.ks.queue.length > 0) this.#ready(e.ks);
    this.#resumeReading();
  }

  #pendingDlRemovals: { partition: number; offset: number }[] = [];

  /** After a failed attempt (nack, timeout, disconnect): back to its key's queue, dead-lettered, or held. */
  #retry(e: Entry, delayMs: number | undefined, failure: boolean): void {
    this.#release(e);
    if (failure && e.deliveryCount >= this.spec.maxDeliveries) {
      if (this.spec.deadLetter) return this.#deadLetter(e, 'max_deliveries');
      e.status = 'held';
      // Held behind the waiting expedited entries of its key, which must never wait for a poison.
      const q = e.ks.queue;
      let i = 0;
      while (i < q.length && (q[i] as Entry).expedited && (q[i] as Entry).status === 'waiting') i++;
      q.splice(i, 0, e);
      if (i > 0) this.#ready(e.ks);
      return;
    }
    const b = this.spec.backoff;
    const delay =
      delayMs ??
      (failure ? Math.min(b.initialMs * b.multiplier ** Math.max(0, e.deliveryCount - 1), b.maxMs) : 0);
    e.notBefore = delay > 0 ? Date.now() + delay : 0;
    this.#enqueue(e);
    if (e.notBefore > 0 && e.ks.queue[0] === e) this.#delay(e.ks, e.notBefore);
  }

  #delay(ks: KeyState, at: number): void {
    this.#delayed.push({ ks, at });
  }

  #deadLetter(e: Entry, reason: string, error?: string): void {
    this.#deadLetters.push({
      partition: e.rec.partition,
      offset: e.rec.offset,
      key: e.rec.key,
      decisionId: e.rec.decisionId,
      revision: e.rec.revision,
      reason,
      deliveryCount: e.deliveryCount,
      at: new Date().toISOString(),
      ...(error === undefined ? {} : { error }),
    });
    this.#resolve(e, 'deadLettered');
  }

  // ------------------------------------------------------------ consumers

  /** Attaches a consumer (a connection, or the REST pull consumer) with initial credits. */
  attach(sink: ConsumerSink, credits: number, id = `c${++consumerSeq}`): ConsumerHandle {
    const c: Consumer = {
      id,
      sink,
      since: Date.now(),
      credits: Math.max(0, credits),
      outstanding: 0,
      alive: true,
    };
    this.#consumers.set(c.id, c);
    this.#schedulePump();
    return {
      id: c.id,
      subscription: this.spec.name,
      resetCredits: () => {
        c.credits = 0;
      },
      pump: () => this.pump(),
      credit: (n) => {
        if (!c.alive) return;
        c.credits = Math.min(c.credits + Math.max(0, Math.floor(n)), 1_000_000);
        this.#schedulePump();
      },
      ack: (positions) => positions.map((p) => this.#ackOne(c, p)),
      ackUpTo: (p) => this.#ackUpTo(c, p),
      nack: (positions, delayMs) => positions.map((p) => this.#nackOne(c, p, delayMs)),
      detach: () => this.#detach(c),
    };
  }

  #detach(c: Consumer): void {
    if (!c.alive) return;
    c.alive = false;
    this.#consumers.delete(c.id);
    for (const e of this.#outEntries()) if (e.consumer === c) this.#retry(e, 0, false);
    this.#schedulePump();
  }

  *#outEntries(): Iterable<Entry> {
    for (const part of this.#parts)
      for (const e of [...part.pending.values()]) if (e.status === 'out') yield e;
    for (const e of [...this.#replays.values()]) if (e.status === 'out') yield e;
  }

  #find(position: unknown): { e?: Entry; resolved: boolean; error?: AckResult } {
    const pos = String(position);
    let p: { partition: number; offset: number };
    try {
      p = parsePosition(pos);
    } catch (err) {
      return {
        resolved: false,
        error: {
          position: pos,
          ok: false,
          code: 'INVALID_POSITION',
          message: isCdsError(err) ? err.message : 'bad position',
        },
      };
    }
    const replay = this.#replays.get(pos);
    if (replay !== undefined) return { e: replay, resolved: false };
    const part = this.#parts[p.partition];
    if (part === undefined)
      return { resolved: false, error: unknown(pos, `partition ${p.partition} does not exist`) };
    const e = part.pending.get(p.offset);
    if (e !== undefined) return { e, resolved: false };
    return { resolved: p.offset < part.next };
  }

  #ackOne(c: Consumer, position: unknown): AckResult {
    const pos = String(position);
    const f = this.#find(position);
    if (f.error) return f.error;
    if (f.e === undefined) return f.resolved ? { position: pos, ok: true } : unknown(pos, 'not delivered');
    if (f.e.deliveryCount === 0) return unknown(pos, 'not delivered yet');
    void c;
    this.#resolve(f.e, 'acked');
    return { position: pos, ok: true };
  }

  #ackUpTo(c: Consumer, position: unknown): AckResult {
    const pos = String(position);
    let p: { partition: number; offset: number };
    try {
      p = parsePosition(pos);
    } catch (err) {
      return {
        position: pos,
        ok: false,
        code: 'INVALID_POSITION',
        message: isCdsError(err) ? err.message : 'bad position',
      };
    }
    const part = this.#parts[p.partition];
    if (part === undefined || p.offset >= part.next) return unknown(pos, 'beyond what was delivered');
    let count = 0;
    for (const e of [...part.pending.values()]) {
      if (e.rec.offset > p.offset) break;
      if (e.status === 'out' && e.consumer === c) {
        this.#resolve(e, 'acked');
        count++;
      }
    }
    return { position: pos, ok: true, count };
  }

  #nackOne(c: Consumer, position: unknown, delayMs: number | undefined): AckResult {
    const pos = String(position);
    const f = this.#find(position);
    if (f.error) return f.error;
    if (f.e === undefined) return f.resolved ? { position: pos, ok: true } : unknown(pos, 'not delivered');
    if (f.e.status !== 'out') return { position: pos, ok: true };
    void c;
    this.counters.nacked++;
    this.#retry(f.e, delayMs, true);
    this.#schedulePump();
    return { position: pos, ok: true };
  }

  // ------------------------------------------------------------ dispatch

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#stopped) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      try {
        this.pump();
      } catch (e) {
        this.#deps.onError(e);
      }
    });
  }

  #room(c: Consumer): number {
    if (!c.alive) return 0;
    if (this.spec.ackPolicy === 'auto') return c.credits;
    return Math.min(c.credits, this.spec.maxInFlight - c.outstanding);
  }

  #anyRoom(): boolean {
    for (const c of this.#consumers.values()) if (this.#room(c) > 0) return true;
    return false;
  }

  #pick(ks: KeyState): Consumer | undefined {
    if (ks.owner !== undefined) return ks.owner;
    if (this.spec.ordering === 'none') {
      let best: Consumer | undefined;
      for (const c of this.#consumers.values())
        if (best === undefined || this.#room(c) > this.#room(best)) best = c;
      return best;
    }
    if (this.#consumers.size === 1) return this.#consumers.values().next().value; // nothing to hash between
    let best: Consumer | undefined;
    let bestScore = '';
    for (const c of this.#consumers.values()) {
      if (this.#room(c) <= 0) continue;
      const s = createHash('sha1').update(ks.id).update('\0').update(c.id).digest('hex');
      if (best === undefined || s > bestScore) {
        best = c;
        bestScore = s;
      }
    }
    return best;
  }

  /** Sends what can be sent now: keys by head priority, each to its consumer, within credits. */
  pump(): void {
    if (this.#stopped || this.spec.state === 'paused' || this.#consumers.size === 0) return;
    // Nothing goes out while the last commit's pending entries are re-read: a recovered entry sent
    // before an earlier-committed one of its key is back (an expedited halt, say) would break the
    // key's order and name a prevPosition the consumer has not received yet.
    if (this.#recovering.length > 0) return;
    if (this.#deps.mayDispatch?.() === false) return;
    const now = Date.now();
    const out = new Map<Consumer, string[]>();
    scan: for (let b = EXPEDITED; b >= 0; b--) {
      const bucket = this.#buckets[b] as Set<KeyState>;
      for (const ks of bucket) {
        if (!this.#anyRoom()) break scan;
        const head = ks.queue[0];
        if (head === undefined || head.status === 'held' || this.#priorityOf(head) !== b) {
          bucket.delete(ks);
          if (head !== undefined && head.status !== 'held') this.#buckets[this.#priorityOf(head)]?.add(ks);
          continue;
        }
        if (head.notBefore > now) {
          bucket.delete(ks);
          this.#delay(ks, head.notBefore);
          continue;
        }
        const c = this.#pick(ks);
        if (c === undefined || this.#room(c) <= 0) continue;
        let sent = false;
        while (this.#room(c) > 0) {
          const e = ks.queue[0];
          if (e === undefined || e.status === 'held' || e.notBefore > now) break;
          if (
            !e.replay &&
            !this.spec.includeExpired &&
            e.rec.expiresAt !== undefined &&
            e.rec.expiresAt <= now
          ) {
            this.#resolve(e, 'expired');
            continue;
          }
          if (this.#transform !== undefined && e.payloadVersion !== this.#transformVersion) {
            this.#prepare(e);
            break;
          }
          ks.queue.shift();
          let list = out.get(c);
          if (list === undefined) out.set(c, (list = []));
          list.push(this.#send(e, c, now));
          sent = true;
        }
        const head2 = ks.queue[0];
        if (head2 === undefined || head2.status === 'held') bucket.delete(ks);
        else if (sent && this.#priorityOf(head2) !== b) {
          bucket.delete(ks);
          this.#buckets[this.#priorityOf(head2)]?.add(ks);
        }
      }
    }
    for (const [c, list] of out) {
      try {
        c.sink.send(list);
      } catch (e) {
        this.#deps.onError(e);
      }
    }
  }

  #send(e: Entry, c: Consumer, now: number): string {
    const part = this.#parts[e.rec.partition] as Part;
    const chained = e.prev === undefined;
    if (chained) {
      const prev = part.lastDelivered.get(e.rec.key);
      e.prev = prev ?? null;
      part.lastDelivered.delete(e.rec.key);
      part.lastDelivered.set(e.rec.key, e.rec.offset);
      if (part.lastDelivered.size > MAX_ANCHORS) {
        const oldest = part.lastDelivered.keys().next();
        if (oldest.done !== true) part.lastDelivered.delete(oldest.value);
      }
    }
    // handover (ADR 0009): this delivery places the entry in its key's chain, and the previous element
    // of the chain went to another consumer (or to none in this run), or the chain starts here. The
    // consumer then starts a new chain for the key; redeliveries never carry it.
    let handover = false;
    if (chained) {
      handover = part.lastTo.get(e.rec.key) !== c || e.prev === null;
      part.lastTo.delete(e.rec.key);
      part.lastTo.set(e.rec.key, c);
      if (part.lastTo.size > MAX_ANCHORS) {
        const oldest = part.lastTo.keys().next();
        if (oldest.done !== true) part.lastTo.delete(oldest.value);
      }
    }
    e.deliveryCount++;
    if (e.deliveryCount > 1) this.counters.redelivered++;
    this.counters.delivered++;
    c.credits--;
    const text = encodeDelivery(
      {
        rec: e.rec,
        prevPosition:
          e.prev === null || e.prev === undefined ? null : formatPosition(e.rec.partition, e.prev),
        epochJson: this.#epochJson,
        deliveryCount: e.deliveryCount,
        expedited: e.expedited,
        handover,
        expired: e.rec.expiresAt !== undefined && e.rec.expiresAt <= now,
      },
      this.#transform === undefined ? e.rec.payloadText : (e.payload ?? 'null'),
    );
    this.dirty = true;
    if (this.spec.ackPolicy === 'auto') {
      this.#resolve(e, 'acked');
      return text;
    }
    e.status = 'out';
    e.consumer = c;
    e.ks.out++;
    e.ks.owner = c;
    c.outstanding++;
    this.#outstanding++;
    e.lease = ++this.#leaseSeq;
    this.#leases.push({ e, id: e.lease, deadline: now + this.spec.ackTimeoutMs });
    return text;
  }

  #prepare(e: Entry): void {
    const t = this.#transform;
    if (t === undefined || e.preparing) return;
    e.preparing = true;
    const version = this.#transformVersion;
    t.evaluate(e.rec.decision)
      .then((v: unknown) => {
        e.preparing = false;
        if (version !== this.#transformVersion) return this.#schedulePump();
        e.payload = v === undefined ? 'null' : JSON.stringify(v);
        e.payloadVersion = version;
        this.#schedulePump();
      })
      .catch((err: unknown) => {
        e.preparing = false;
        this.counters.transformFailures++;
        if (
          e.status === 'waiting' &&
          (e.replay || this.#parts[e.rec.partition]?.pending.get(e.rec.offset) === e)
        )
          this.#deadLetter(e, 'transform_failed', String((err as Error)?.message ?? err));
        this.#schedulePump();
      });
  }

  // ------------------------------------------------------------ time

  /** Expires leases, wakes delayed keys, applies the disconnect policy; the engine calls it often. */
  tick(now: number): void {
    if (this.#stopped) return;
    let expired = false;
    while (this.#leases.length > 0) {
      const l = this.#leases[0] as Lease;
      if (l.e.lease !== l.id || l.e.status !== 'out') {
        this.#leases.shift();
        continue;
      }
      if (l.deadline > now) break;
      this.#leases.shift();
      this.counters.ackTimeouts++;
      this.#retry(l.e, undefined, true);
      expired = true;
    }
    if (this.#leases.length > 4 * this.#outstanding + 1024)
      this.#leases = this.#leases.filter((l) => l.e.lease === l.id && l.e.status === 'out');
    for (let i = this.#delayed.length - 1; i >= 0; i--) {
      const d = this.#delayed[i] as { ks: KeyState; at: number };
      if (d.at <= now) {
        this.#delayed.splice(i, 1);
        this.#ready(d.ks);
      }
    }
    if (expired) this.#schedulePump();
    const slow = this.spec.slowConsumer;
    if (slow.policy === 'disconnect' && this.lag() > slow.lagLimit) {
      for (const c of [...this.#consumers.values()]) {
        if (now - c.since < (slow.graceMs ?? 5000)) continue;
        this.#detach(c);
        c.sink.close(
          'SLOW_CONSUMER',
          `subscription '${this.spec.name}' is more than ${slow.lagLimit} records behind`,
        );
      }
    }
  }

  // ------------------------------------------------------------ state, lifecycle, operator actions

  /** Records between the ack floor and the log's tail, over all partitions. */
  lag(): number {
    let n = 0;
    const ext = this.#deps.log.extents();
    for (const p of this.#parts) n += Math.max(0, (ext[p.partition]?.next ?? 0) - this.#floor(p));
    return n;
  }

  #floor(p: Part): number {
    const first = p.pending.keys().next();
    return first.done === true ? p.next : first.value;
  }

  /** The durable cursor of every partition (ADR 0009). */
  snapshot(): CursorSnapshot[] {
    return this.#parts.map((p) => {
      // Each delivered pending entry keeps its prevPosition, so the chain needs no rewinding at restart.
      return {
        partition: p.partition,
        next: p.next,
        pending: [...p.pending.values()].map((e) =>
          e.prev === undefined
            ? ([e.rec.offset, e.deliveryCount] as const)
            : ([e.rec.offset, e.deliveryCount, e.prev] as const),
        ),
        anchors: [...p.lastDelivered],
      };
    });
  }

  /** Dead letters gathered since the last call, and replayed ones acked (to remove from the store). */
  takeDeadLetters(): { add: DeadLetter[]; remove: { partition: number; offset: number }[] } {
    const add = this.#deadLetters;
    const remove = this.#pendingDlRemovals;
    this.#deadLetters = [];
    this.#pendingDlRemovals = [];
    return { add, remove };
  }

  /** Moves the read position (seek): everything pending is dropped; acks of it get UNKNOWN_DELIVERY. */
  seek(next: readonly number[]): void {
    this.#gen++;
    this.#recovering = [];
    for (const part of this.#parts) {
      for (const e of part.pending.values()) this.#release(e);
      part.pending.clear();
      part.next = next[part.partition] ?? part.next;
      part.live = false;
    }
    for (const e of this.#replays.values()) this.#release(e);
    this.#replays.clear();
    this.#keys.clear();
    for (const b of this.#buckets) b.clear();
    this.#delayed.length = 0;
    this.#leases = [];
    this.dirty = true;
    this.#resumeReading();
  }

  /** Delivers dead letters again (their records read from the log); returns how many were found. */
  async replay(letters: readonly DeadLetter[]): Promise<number> {
    let n = 0;
    for (const l of letters) {
      if (this.#replays.has(formatPosition(l.partition, l.offset))) continue;
      const r = await this.#deps.log.readOne(l.partition, l.offset);
      const d = r === undefined ? undefined : decodeRecord(r);
      if (d === undefined || this.#stopped) continue;
      this.#take(d, 0, true);
      n++;
    }
    this.#schedulePump();
    return n;
  }

  /** The ack floor of a partition: its first pending offset, else its read position. */
  floor(partition: number): number | undefined {
    const p = this.#parts[partition];
    return p === undefined ? undefined : this.#floor(p);
  }

  /**
   * A `drop` retention policy removes [floor, before) of a partition (ADR 0017): pending entries there
   * are resolved as retentionLost, the read position moves to `before`, connected consumers get a
   * notice. Returns the loss, or undefined when the subscription had nothing there.
   */
  retentionLost(partition: number, before: number, now = Date.now()): RetentionLoss | undefined {
    const part = this.#parts[partition];
    if (part === undefined) return undefined;
    const from = this.#floor(part);
    if (from >= before) return undefined;
    let pending = 0;
    for (const e of [...part.pending.values()]) {
      if (e.rec.offset >= before) continue;
      this.#resolve(e, 'retentionLost');
      pending++;
    }
    if (part.next < before) part.next = before;
    const loss: RetentionLoss = { partition, from, to: before, pending, at: now };
    this.losses.push(loss);
    if (this.losses.length > MAX_LOSSES) this.losses.shift();
    this.dirty = true;
    const notice: ConsumerNotice = {
      type: 'retention-lost',
      subscription: this.spec.name,
      partition,
      from: formatPosition(partition, from),
      to: formatPosition(partition, before),
      pending,
      at: new Date(now).toISOString(),
    };
    for (const c of this.#consumers.values()) {
      try {
        c.sink.notice?.(notice);
      } catch (e) {
        this.#deps.onError(e);
      }
    }
    this.#resumeReading();
    this.#schedulePump();
    return loss;
  }

  /** Resolves a held (poisoned) entry so its key flows again; false if the position is not held. */
  skip(position: string): boolean {
    const f = this.#find(position);
    if (f.e === undefined || f.e.status !== 'held') return false;
    this.#resolve(f.e, 'skipped');
    this.#schedulePump();
    return true;
  }

  /** Read-only view of the live state (delivery/introspect.ts). */
  inspect(): RuntimeView {
    return { parts: this.#parts, consumers: this.#consumers.values(), outstanding: this.#outstanding };
  }

  /** A summary for the API. */
  status(): Record<string, unknown> {
    let pending = 0;
    let held = 0;
    for (const p of this.#parts) {
      pending += p.pending.size;
      for (const e of p.pending.values()) if (e.status === 'held') held++;
    }
    return {
      consumers: this.#consumers.size,
      pending,
      outstanding: this.#outstanding,
      held,
      lag: this.lag(),
      drained: this.spec.state === 'draining' && pending === 0,
      cursors: this.#parts.map((p) => ({
        partition: p.partition,
        next: p.next,
        ackFloor: this.#floor(p),
        live: p.live,
      })),
      counters: { ...this.counters },
    };
  }
}

function unknown(position: string, why: string): AckResult {
  return { position, ok: false, code: 'UNKNOWN_DELIVERY', message: `${position}: ${why}` };
}
