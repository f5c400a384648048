/**
 * The delivery engine (ADR 0009): the shared tail reader, the matcher of every live subscription,
 * one runtime per subscription, the timer that expires leases, and batched cursor commits. In
 * cluster mode (ADR 0015) a subscription runs under a fence: its lease's token goes with each of its
 * cursor commits, and nothing of it is dispatched (nor timed out) once the fence says the lease is overdue.
 */
import { CdsError } from '../errors/index.ts';
import { firstAtOrAfter, type EventLog } from '../log/index.ts';
import { SubscriptionMatcher, type ExplainVerdict } from '../routing/index.ts';
import type { CursorSnapshot, DeadLetter, SubscriptionStore } from '../state/subscriptions-port.ts';
import type { StartSpec, SubscriptionSpec } from '../subscriptions/spec.ts';
import type { ErrorCode } from '../errors/index.ts';
import { SubscriptionRuntime } from './runtime.ts';
import { TailReader } from './tail-reader.ts';

/** The lease a subscription runs under in cluster mode (ADR 0015). */
export interface Fence {
  /** The lease's fencing token, sent with every cursor commit of the subscription. */
  readonly token: number;
  /** Whether the lease is still valid by this instance's monotonic clock (dispatch is allowed). */
  valid(): boolean;
}

/** Engine options. */
export interface EngineOptions {
  /** How often dirty cursors are committed, in ms (default 200). */
  readonly commitIntervalMs?: number;
  /**
   * Main-thread time a timed commit may spend taking snapshots, in ms (default 4): subscriptions not
   * reached wait for the next tick, taken in turn, so a commit never stalls delivery for long.
   */
  readonly commitBudgetMs?: number;
  /** How often leases and delays are checked, in ms (default 25). */
  readonly tickMs?: number;
  readonly onError: (e: unknown) => void;
  /** Observes each durable cursor commit (the ledger, ADR 0011); called after it is stored. */
  readonly onCommit?: (cursors: ReadonlyMap<string, readonly CursorSnapshot[]>, at: number) => void;
  /** Told of subscriptions whose commit the store refused for a stale token (their lease moved). */
  readonly onFenced?: (names: readonly string[]) => void;
}

/** Runs every subscription of this instance. */
export class DeliveryEngine {
  readonly #matcher = new SubscriptionMatcher();
  readonly #runtimes = new Map<string, SubscriptionRuntime>();
  readonly #fences = new Map<SubscriptionRuntime, Fence>();
  /** Runtimes stopped by `retire` until their last commit is done (no longer running, still committed). */
  readonly #retiring = new Set<[string, SubscriptionRuntime]>();
  readonly #tail: TailReader;
  #commitTimer: NodeJS.Timeout | undefined;
  #tickTimer: NodeJS.Timeout | undefined;
  #committing: Promise<void> = Promise.resolve();
  /** Commits queued or running (the timer skips its tick while there is one). */
  #commitsPending = 0;
  /** Where the next timed commit starts in the runtimes' order (round robin under the budget). */
  #commitFrom = 0;
  #closed = false;
  /** Dead letters (and removals) a failed commit could not store, by subscription: stored first next time. */
  readonly #unsavedDeadLetters = new Map<
    string,
    { add: DeadLetter[]; remove: { partition: number; offset: number }[] }
  >();

  constructor(
    private readonly log: EventLog,
    private readonly store: SubscriptionStore,
    private readonly opts: EngineOptions,
  ) {
    this.#tail = new TailReader(
      log,
      this.#matcher,
      (b) => {
        for (const rt of this.#runtimes.values()) {
          if (!rt.isLive(b.partition)) continue;
          try {
            rt.onTail(b.partition, b.from, b.to, b.taken.get(rt.spec.name));
          } catch (e) {
            opts.onError(e); // one subscription's fault never stops the others
          }
        }
      },
      opts.onError,
    );
  }

  /** Starts the readers and timers. */
  start(): void {
    this.#tail.start();
    this.#commitTimer = setInterval(() => {
      // A commit slower than the interval makes the timer skip a tick rather than queue without bound.
      if (this.#commitsPending === 0) void this.commit(this.opts.commitBudgetMs ?? 4);
    }, this.opts.commitIntervalMs ?? 200);
    this.#commitTimer.unref();
    this.#tickTimer = setInterval(() => {
      const now = Date.now();
      for (const rt of this.#runtimes.values()) {
        if (this.#fences.get(rt)?.valid() === false) continue; // an overdue lease: nothing moves
        try {
          rt.tick(now);
        } catch (e) {
          this.opts.onError(e);
        }
      }
    }, this.opts.tickMs ?? 25);
    this.#tickTimer.unref();
  }

  /** Starts delivering a subscription from its cursors (under `fence` in cluster mode). */
  add(spec: SubscriptionSpec, cursors: readonly CursorSnapshot[], fence?: Fence): SubscriptionRuntime {
    const rt = new SubscriptionRuntime(
      spec,
      {
        log: this.log,
        epoch: this.log.epoch,
        tailNext: (p) => this.#tail.next(p),
        onError: this.opts.onError,
        ...(fence === undefined ? {} : { mayDispatch: () => fence.valid() }),
      },
      cursors,
    );
    this.#matcher.add({ id: spec.name, patterns: spec.topics, filter: spec.filter });
    this.#runtimes.set(spec.name, rt);
    if (fence !== undefined) this.#fences.set(rt, fence);
    rt.start().catch(this.opts.onError);
    return rt;
  }

  /** Applies a changed definition to the running subscription, live. */
  update(spec: SubscriptionSpec): void {
    const rt = this.#runtimes.get(spec.name);
    if (rt === undefined) return;
    this.#matcher.update({ id: spec.name, patterns: spec.topics, filter: spec.filter });
    rt.update(spec);
  }

  /** Stops a subscription (deleted); its consumers are closed with NOT_FOUND. */
  remove(name: string): void {
    const rt = this.#runtimes.get(name);
    if (rt === undefined) return;
    this.#drop(name, rt);
    rt.stop('NOT_FOUND', `subscription '${name}' was deleted`);
  }

  #drop(name: string, rt: SubscriptionRuntime): void {
    if (this.#runtimes.get(name) !== rt) return;
    this.#runtimes.delete(name);
    this.#fences.delete(rt);
    this.#unsavedDeadLetters.delete(name);
    this.#matcher.remove(name);
  }

  /**
   * Stops running a subscription here (its lease ends: cluster mode): consumers are closed with
   * `code` (what is outstanding at them is pending again), its cursor is committed a last time under
   * its fence (refused if the lease moved meanwhile), then it is dropped. Resolves after that commit.
   */
  async retire(name: string, code: ErrorCode, message: string): Promise<void> {
    const rt = this.#runtimes.get(name);
    if (rt === undefined) return;
    const fence = this.#fences.get(rt);
    const entry: [string, SubscriptionRuntime] = [name, rt];
    const unsaved = this.#unsavedDeadLetters.get(name);
    this.#drop(name, rt); // gone at once: a consumer arriving now finds it absent, not stopped
    rt.stop(code, message);
    if (fence !== undefined) this.#fences.set(rt, fence);
    if (unsaved !== undefined) this.#unsavedDeadLetters.set(name, unsaved); // still to store
    this.#retiring.add(entry);
    try {
      await this.commit();
    } finally {
      this.#retiring.delete(entry);
      this.#fences.delete(rt);
    }
  }

  /** The runtime of a subscription. */
  get(name: string): SubscriptionRuntime | undefined {
    return this.#runtimes.get(name);
  }

  /** Every running subscription (read-only use: delivery/introspect.ts). */
  runtimes(): IterableIterator<SubscriptionRuntime> {
    return this.#runtimes.values();
  }

  /** Which subscriptions take or filter out a decision now, and why (read-only; the ledger). */
  explain(decision: unknown, topics: readonly string[]): ExplainVerdict[] {
    return this.#matcher.explain(decision, topics);
  }

  /** Per partition, where a start specification begins reading (offsets). */
  async resolveStart(start: StartSpec): Promise<number[]> {
    const ext = this.log.extents();
    if (start.kind === 'latest') return ext.map((e) => e.next);
    if (start.kind === 'earliest') return ext.map((e) => e.first);
    if (start.kind === 'positions') {
      if (start.epoch !== undefined && start.epoch !== this.log.epoch)
        throw new CdsError(
          'EPOCH_MISMATCH',
          `positions of epoch ${start.epoch}, but the log is at epoch ${this.log.epoch} (restored or reset): start from a position of this epoch, a time, "earliest" or "latest"`,
          { details: { epoch: start.epoch, current: this.log.epoch } },
        );
      const out = ext.map((e) => e.next);
      for (const s of start.positions) {
        const [p, o] = s.split(':').map(Number) as [number, number];
        const e = ext[p];
        if (e !== undefined) out[p] = Math.min(Math.max(o, e.first), e.next);
      }
      return out;
    }
    const t = Date.parse(start.time);
    return Promise.all(ext.map((e) => firstAtOrAfter(this.log, e.partition, e.first, e.next, t)));
  }

  /**
   * Writes dead letters, then the cursors of every subscription that changed, in one batch. With a
   * `budgetMs` (the timer's commits), it stops taking subscriptions once their snapshots have taken
   * that long; the next one starts where it stopped. Without, everything is committed.
   */
  commit(budgetMs = Infinity): Promise<void> {
    this.#commitsPending++;
    this.#committing = this.#committing
      .then(() => this.#commitNow(budgetMs))
      .catch(this.opts.onError)
      .finally(() => {
        this.#commitsPending--;
      });
    return this.#committing;
  }

  /**
   * A failed write loses nothing: cursors stay dirty and dead letters are kept for the next commit
   * (the store is unavailable during a PostgreSQL outage). A subscription whose dead letters were not
   * stored keeps its cursor back too, so that no cursor is stored past a letter that is not.
   */
  async #commitNow(budgetMs: number): Promise<void> {
    const cursors = new Map<string, CursorSnapshot[]>();
    const fences = new Map<string, number>();
    const dirty: SubscriptionRuntime[] = [];
    let failure: { e: unknown } | undefined;
    const started = performance.now();
    const running = [...this.#runtimes];
    const from = this.#commitFrom % Math.max(1, running.length);
    let reached = 0;
    // Retiring runtimes first, always: a runtime started again under the same name (a new lease) wins.
    const retiring = [...this.#retiring];
    const order = [...retiring, ...running.slice(from), ...running.slice(0, from)];
    for (let i = 0; i < order.length; i++) {
      const [name, rt] = order[i] as [string, SubscriptionRuntime];
      if (i >= retiring.length) {
        if (reached > 0 && performance.now() - started > budgetMs) break;
        reached++;
      }
      const taken = rt.takeDeadLetters();
      const held = this.#unsavedDeadLetters.get(name);
      const dl =
        held === undefined
          ? taken
          : { add: [...held.add, ...taken.add], remove: [...held.remove, ...taken.remove] };
      this.#unsavedDeadLetters.delete(name);
      const token = this.#fences.get(rt)?.token;
      try {
        if (failure !== undefined) throw failure.e; // the store is failing: keep the rest for later
        // Fenced like the cursors: refused when the lease moved (its new owner delivers them again).
        const added = dl.add.length === 0 || (await this.store.addDeadLetters(name, dl.add, token));
        const removed =
          dl.remove.length === 0 || (await this.store.removeDeadLetters(name, dl.remove, token));
        if (added === false || removed === false) {
          this.opts.onFenced?.([name]);
          continue;
        }
      } catch (e) {
        if (dl.add.length > 0 || dl.remove.length > 0) this.#unsavedDeadLetters.set(name, dl);
        failure ??= { e };
        if (dl.add.length > 0) continue; // this cursor waits for its letters (stays dirty)
      }
      if (!rt.dirty) continue;
      rt.dirty = false;
      dirty.push(rt);
      cursors.set(name, rt.snapshot());
      const fence = this.#fences.get(rt);
      if (fence !== undefined) fences.set(name, fence.token);
    }
    this.#commitFrom = from + reached;
    let refused: string[];
    try {
      refused = await this.store.saveCursors(cursors, fences);
    } catch (e) {
      for (const rt of dirty) rt.dirty = true;
      throw e;
    }
    // A refused cursor stays as it was in the store: its lease moved, retrying would be refused too.
    for (const name of refused) cursors.delete(name);
    if (refused.length > 0) this.opts.onFenced?.(refused);
    if (cursors.size > 0) this.opts.onCommit?.(cursors, Date.now());
    if (failure !== undefined) throw failure.e;
  }

  /** Stops readers and timers, closes consumers with SHUTTING_DOWN, commits last. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#commitTimer);
    clearInterval(this.#tickTimer);
    for (const rt of this.#runtimes.values())
      rt.stop('SHUTTING_DOWN', 'this instance is shutting down; reconnect (elsewhere)');
    await this.#tail.stop();
    await this.commit();
  }
}
