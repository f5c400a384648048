/**
 * Subscription management (DESIGN 5, 7; ADR 0009): create, change live, pause, resume, drain,
 * delete, seek, dead letters, skip; consumers for the transports. Every change is checked against the
 * caller's scopes, stored with a new version, applied to the running engine, and audited. In cluster
 * mode (ADR 0015) a subscription runs only on the instance holding its lease: a `Placement` starts and
 * stops it here, and consuming or operating on it elsewhere claims its lease if free, or is answered
 * NOT_OWNER naming the owner.
 */
import { isDeepStrictEqual } from 'node:util';
import { parsePosition } from '../domain/position.ts';
import { CdsError } from '../errors/index.ts';
import type { DeliveryEngine, Fence } from '../delivery/engine.ts';
import type { ConsumerHandle, ConsumerSink } from '../delivery/types.ts';
import type { AuditTrail, AuthContext } from '../security/index.ts';
import type { DeadLetter, SubscriptionRecord, SubscriptionStore } from '../state/subscriptions-port.ts';
import {
  parseCreate,
  parseSeek,
  parsePatch,
  patternCovers,
  type SubscriptionSpec,
  type SubscriptionState,
} from './spec.ts';

/** What the API shows of a subscription. */
export interface SubscriptionView extends SubscriptionSpec {
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly status: Record<string, unknown>;
}

/** A caller as the service sees it. */
type Caller = Pick<AuthContext, 'principalId' | 'grants'>;

/**
 * Where subscriptions run in cluster mode (src/cluster, ADR 0015). Absent in embedded mode, where
 * every subscription runs in this process.
 */
export interface Placement {
  /**
   * Makes a subscription run here when its lease is free (taking it now); otherwise rejects with
   * NOT_OWNER naming the instance that dispatches it (retriable), or NOT_FOUND.
   */
  claim(name: string): Promise<void>;
  /** A subscription was created, changed or deleted (here or elsewhere): place it again soon. */
  changed(name: string): void;
  /** Who dispatches a subscription, as this instance last saw it (for views); undefined: unknown. */
  owner(name: string): Record<string, unknown> | undefined;
}

/** Manages subscriptions and hands consumers to transports. */
export class SubscriptionService {
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #pull = new Map<
    string,
    { handle: ConsumerHandle; collect: string[] | undefined; wake?: () => void }
  >();

  private constructor(
    private readonly store: SubscriptionStore,
    private readonly engine: DeliveryEngine,
    private readonly audit: AuditTrail,
    private readonly placement: Placement | undefined,
  ) {}

  /**
   * Loads every stored subscription into the engine and starts it; with a placement (cluster mode)
   * none is loaded here: the placement runs those whose lease this instance takes (`runLeased`).
   */
  static async open(
    store: SubscriptionStore,
    engine: DeliveryEngine,
    audit: AuditTrail,
    placement?: Placement,
  ): Promise<SubscriptionService> {
    const svc = new SubscriptionService(store, engine, audit, placement);
    if (placement === undefined)
      for (const r of await store.list())
        engine.add(r.spec as unknown as SubscriptionSpec, await store.loadCursors(r.name));
    engine.start();
    return svc;
  }

  /**
   * Starts running a subscription whose lease this instance has just taken (cluster mode), from the
   * cursors committed now (read after the lease was taken, so no older owner can commit after them).
   * Resolves false when the subscription no longer exists.
   */
  async runLeased(name: string, fence: Fence): Promise<boolean> {
    const r = await this.store.get(name);
    if (r === undefined) return false;
    const cursors = await this.store.loadCursors(name);
    if (this.engine.get(name) !== undefined)
      await this.engine.retire(name, 'NOT_OWNER', `subscription '${name}' restarts under a new lease`);
    this.engine.add(r.spec as unknown as SubscriptionSpec, cursors, fence);
    return true;
  }

  /**
   * Stops running a subscription whose lease this instance no longer holds (cluster mode): consumers
   * are closed with NOT_OWNER (retriable: they reconnect and are sent to the new owner) and the cursor
   * is committed a last time under the old token (refused if the lease moved meanwhile).
   */
  async stopLeased(name: string, message: string): Promise<void> {
    this.#pull.delete(name);
    await this.engine.retire(name, 'NOT_OWNER', message);
  }

  /** The running subscription, claiming its lease first in cluster mode (NOT_OWNER when held elsewhere). */
  async #here(name: string) {
    if (this.engine.get(name) === undefined && this.placement !== undefined) await this.placement.claim(name);
    return this.#running(name);
  }

  // ------------------------------------------------------------ scopes

  #mayAdmin(c: Caller, topics: readonly string[]): boolean {
    return topics.every((t) => c.grants.some((g) => g.action === 'admin' && patternCovers(g.pattern, t)));
  }

  #requireAdmin(c: Caller, topics: readonly string[]): void {
    if (!this.#mayAdmin(c, topics))
      throw new CdsError(
        'FORBIDDEN',
        `changing this subscription needs admin on each of its topic patterns (${topics.join(', ')})`,
      );
  }

  #requireSubscribe(c: Caller, topics: readonly string[]): void {
    const ok = topics.every((t) =>
      c.grants.some((g) => (g.action === 'subscribe' || g.action === 'admin') && patternCovers(g.pattern, t)),
    );
    if (!ok)
      throw new CdsError(
        'FORBIDDEN',
        `consuming needs subscribe on each topic pattern (${topics.join(', ')})`,
      );
  }

  /** Runs mutations of one subscription one at a time. */
  async #serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(name, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(name) === tail) this.#locks.delete(name);
    }
  }

  /**
   * The running subscription: consuming (attach, fetch, ack, nack) checks scopes against the spec the
   * engine runs, so it needs no store read and keeps working while a shared store is unreachable.
   */
  #running(name: string) {
    const rt = this.engine.get(name);
    if (rt === undefined) throw new CdsError('NOT_FOUND', `no subscription '${name}'`);
    return rt;
  }

  async #record(name: string): Promise<SubscriptionRecord> {
    const r = await this.store.get(name);
    if (r === undefined) throw new CdsError('NOT_FOUND', `no subscription '${name}'`);
    return r;
  }

  #view(r: SubscriptionRecord): SubscriptionView {
    const spec = r.spec as unknown as SubscriptionSpec;
    const owner = this.placement?.owner(r.name);
    return {
      ...spec,
      version: r.version,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      status: {
        ...(this.engine.get(r.name)?.status() ?? {}),
        ...(owner === undefined ? {} : { owner }),
      },
    };
  }

  // ------------------------------------------------------------ management

  /** Creates a subscription from a POST body. */
  async create(body: unknown, caller: Caller): Promise<SubscriptionView> {
    const spec = parseCreate(body);
    this.#requireAdmin(caller, spec.topics);
    if (this.placement !== undefined) {
      const view = await this.#serial(spec.name, () => this.#create(spec, caller));
      // The creator takes the lease when it is free (then the answer shows its status here).
      await this.placement.claim(spec.name).catch(() => undefined);
      this.placement.changed(spec.name);
      const r = await this.store.get(spec.name);
      return r === undefined ? view : this.#view(r);
    }
    return this.#serial(spec.name, () => this.#create(spec, caller));
  }

  async #create(spec: SubscriptionSpec, caller: Caller): Promise<SubscriptionView> {
    const next = await this.engine.resolveStart(spec.start);
    const cursors = next.map((n, partition) => ({ partition, next: n, pending: [], anchors: [] }));
    const at = new Date().toISOString();
    const rec: SubscriptionRecord = {
      name: spec.name,
      version: 1,
      spec: spec as never,
      createdAt: at,
      updatedAt: at,
    };
    await this.store.put(rec, 0, cursors);
    if (this.placement === undefined) this.engine.add(spec, cursors);
    await this.audit.append({
      actor: caller.principalId,
      action: 'subscription.create',
      target: spec.name,
      details: { spec },
    });
    return this.#view(rec);
  }

  /** Subscriptions the caller may see (subscribe or admin on every pattern). */
  async list(caller: Caller): Promise<SubscriptionView[]> {
    const out: SubscriptionView[] = [];
    for (const r of await this.store.list()) {
      const spec = r.spec as unknown as SubscriptionSpec;
      try {
        this.#requireSubscribe(caller, spec.topics);
        out.push(this.#view(r));
      } catch {
        /* not visible */
      }
    }
    return out;
  }

  /** One subscription. */
  async get(name: string, caller: Caller): Promise<SubscriptionView> {
    const r = await this.#record(name);
    this.#requireSubscribe(caller, (r.spec as unknown as SubscriptionSpec).topics);
    return this.#view(r);
  }

  /**
   * Re-reads one subscription from the store and applies it to the engine: adds it (from its stored
   * cursors), applies a changed definition, or removes it when it is gone. For changes another
   * instance made (the cluster change feed); idempotent, so hearing of a change twice is harmless.
   */
  async reload(name: string): Promise<void> {
    await this.#serial(name, async () => {
      const r = await this.store.get(name);
      const rt = this.engine.get(name);
      this.placement?.changed(name);
      if (r === undefined) {
        if (rt !== undefined) {
          this.engine.remove(name);
          this.#pull.delete(name);
        }
        return;
      }
      const spec = r.spec as unknown as SubscriptionSpec;
      // In cluster mode the placement starts it where its lease is taken.
      if (rt === undefined) {
        if (this.placement === undefined) this.engine.add(spec, await this.store.loadCursors(name));
      } else if (!isDeepStrictEqual(JSON.parse(JSON.stringify(rt.spec)), spec)) this.engine.update(spec);
    });
  }

  async #change(
    name: string,
    caller: Caller,
    action: string,
    make: (cur: SubscriptionSpec) => {
      spec: SubscriptionSpec;
      version?: number;
      details: Record<string, unknown>;
    },
  ): Promise<SubscriptionView> {
    return this.#serial(name, async () => {
      const r = await this.#record(name);
      const cur = r.spec as unknown as SubscriptionSpec;
      this.#requireAdmin(caller, cur.topics);
      const { spec, version, details } = make(cur);
      this.#requireAdmin(caller, spec.topics);
      if (version !== undefined && version !== r.version)
        throw new CdsError(
          'VERSION_CONFLICT',
          `subscription '${name}' is at version ${r.version}, not ${version}`,
          {
            details: { version: r.version },
          },
        );
      const next: SubscriptionRecord = {
        ...r,
        version: r.version + 1,
        spec: spec as never,
        updatedAt: new Date().toISOString(),
      };
      await this.store.put(next, r.version);
      this.engine.update(spec);
      await this.audit.append({
        actor: caller.principalId,
        action,
        target: name,
        details: { version: next.version, ...details },
      });
      return this.#view(next);
    });
  }

  /** Live update of filter, transform and policies (PATCH). */
  patch(name: string, body: unknown, caller: Caller): Promise<SubscriptionView> {
    return this.#change(name, caller, 'subscription.update', (cur) => {
      const p = parsePatch(cur, body);
      const changes: Record<string, unknown> = {};
      for (const k of p.changed) changes[k] = (body as Record<string, unknown>)[k];
      return {
        spec: p.spec,
        ...(p.version === undefined ? {} : { version: p.version }),
        details: { changes },
      };
    });
  }

  /** Pause, resume or drain. */
  setState(name: string, state: SubscriptionState, caller: Caller): Promise<SubscriptionView> {
    const action = state === 'active' ? 'resume' : state === 'paused' ? 'pause' : 'drain';
    return this.#change(name, caller, `subscription.${action}`, (cur) => ({
      spec: { ...cur, state },
      details: { state },
    }));
  }

  /** Deletes a subscription with its cursors and dead letters; its consumers are closed. */
  async remove(name: string, caller: Caller): Promise<void> {
    await this.#serial(name, async () => {
      const r = await this.#record(name);
      this.#requireAdmin(caller, (r.spec as unknown as SubscriptionSpec).topics);
      this.engine.remove(name);
      this.#pull.delete(name);
      await this.store.delete(name);
      this.placement?.changed(name);
      await this.audit.append({
        actor: caller.principalId,
        action: 'subscription.delete',
        target: name,
        details: { version: r.version },
      });
    });
  }

  /**
   * Moves the read position to a position, positions, a time, earliest or latest (body as `start`,
   * see parseSeek); `field` names the target in field errors (`/to` for REST, `/resume` for gRPC).
   */
  async seek(name: string, body: unknown, caller: Caller, field = '/to'): Promise<SubscriptionView> {
    const start = parseSeek(body, field);
    return this.#serial(name, async () => {
      const r = await this.#record(name);
      this.#requireAdmin(caller, (r.spec as unknown as SubscriptionSpec).topics);
      const rt = await this.#here(name);
      const next = await this.engine.resolveStart(start);
      rt.seek(next);
      await this.engine.commit();
      await this.audit.append({
        actor: caller.principalId,
        action: 'subscription.seek',
        target: name,
        details: { to: start, next },
      });
      return this.#view(r);
    });
  }

  // ------------------------------------------------------------ dead letters and poisoned keys

  /** Dead letters of a subscription, after a position, at most `limit`. */
  async deadLetters(
    name: string,
    caller: Caller,
    opts: { after?: string; limit: number },
  ): Promise<DeadLetter[]> {
    await this.get(name, caller);
    await this.engine.commit();
    return this.store.listDeadLetters(name, {
      limit: opts.limit,
      ...(opts.after === undefined ? {} : { after: parsePosition(opts.after, 'after') }),
    });
  }

  /** Delivers dead letters again (all, or the given positions); they leave the queue when acked. */
  async replayDeadLetters(
    name: string,
    caller: Caller,
    positions: readonly string[] | undefined,
  ): Promise<number> {
    const r = await this.#record(name);
    this.#requireAdmin(caller, (r.spec as unknown as SubscriptionSpec).topics);
    const rt = await this.#here(name);
    await this.engine.commit();
    let letters = await this.store.listDeadLetters(name, { limit: 10_000 });
    if (positions !== undefined) {
      const want = new Set(
        positions.map((p) => {
          const x = parsePosition(p, 'positions');
          return `${x.partition}:${x.offset}`;
        }),
      );
      letters = letters.filter((l) => want.has(`${l.partition}:${l.offset}`));
    }
    const n = await rt.replay(letters);
    await this.audit.append({
      actor: caller.principalId,
      action: 'subscription.deadletters.replay',
      target: name,
      details: { count: n },
    });
    return n;
  }

  /** Removes every dead letter of a subscription. */
  async purgeDeadLetters(name: string, caller: Caller): Promise<number> {
    const r = await this.#record(name);
    this.#requireAdmin(caller, (r.spec as unknown as SubscriptionSpec).topics);
    await this.engine.commit();
    const n = await this.store.purgeDeadLetters(name);
    await this.audit.append({
      actor: caller.principalId,
      action: 'subscription.deadletters.purge',
      target: name,
      details: { count: n },
    });
    return n;
  }

  /** Lets a held (poisoned) position go, so its key flows again. */
  async skip(name: string, position: string, caller: Caller): Promise<void> {
    const r = await this.#record(name);
    this.#requireAdmin(caller, (r.spec as unknown as SubscriptionSpec).topics);
    parsePosition(position, 'position');
    if ((await this.#here(name)).skip(position) !== true)
      throw new CdsError('UNKNOWN_DELIVERY', `${position} is not held in subscription '${name}'`);
    await this.audit.append({
      actor: caller.principalId,
      action: 'subscription.skip',
      target: name,
      details: { position },
    });
  }

  // ------------------------------------------------------------ consumers

  /** Attaches a streaming consumer (WebSocket) after checking subscribe scopes. */
  async attach(name: string, caller: Caller, sink: ConsumerSink, credits: number): Promise<ConsumerHandle> {
    const rt = await this.#here(name);
    this.#requireSubscribe(caller, rt.spec.topics);
    return rt.attach(sink, credits);
  }

  async #pullConsumer(name: string, caller: Caller) {
    const rt = await this.#here(name);
    this.#requireSubscribe(caller, rt.spec.topics);
    let p = this.#pull.get(name);
    if (p === undefined) {
      const state: { handle?: ConsumerHandle; collect: string[] | undefined; wake?: () => void } = {
        collect: undefined,
      };
      state.handle = rt.attach(
        {
          send: (d) => {
            state.collect?.push(...d);
            state.wake?.();
          },
          close: () => this.#pull.delete(name),
        },
        0,
        'rest-pull',
      );
      p = state as { handle: ConsumerHandle; collect: string[] | undefined };
      this.#pull.set(name, p);
    }
    return p;
  }

  /** REST pull: up to `max` deliveries, leased until the ack timeout; waits up to `waitMs` for the first. */
  async fetch(name: string, caller: Caller, max: number, waitMs: number): Promise<string[]> {
    const p = await this.#pullConsumer(name, caller);
    if (p.collect !== undefined)
      throw new CdsError('VERSION_CONFLICT', 'another fetch of this subscription is in progress');
    const got: string[] = [];
    p.collect = got;
    try {
      p.handle.credit(max);
      p.handle.pump();
      if (got.length === 0 && waitMs > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, waitMs);
          p.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    } finally {
      p.handle.resetCredits();
      p.collect = undefined;
      delete p.wake;
    }
    return got;
  }

  /** REST pull acks: one result per position. */
  async ack(name: string, caller: Caller, positions: readonly unknown[]) {
    const p = await this.#pullConsumer(name, caller);
    return p.handle.ack(positions);
  }

  /** REST pull negative acks. */
  async nack(name: string, caller: Caller, positions: readonly unknown[], delayMs?: number) {
    const p = await this.#pullConsumer(name, caller);
    return p.handle.nack(positions, delayMs);
  }

  /** Stops delivering (shutdown): commits the cursors last. */
  close(): Promise<void> {
    return this.engine.close();
  }
}
