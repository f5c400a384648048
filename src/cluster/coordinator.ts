/**
 * Cluster mode's placement of subscriptions (DESIGN 6; ADR 0015): which subscriptions this instance
 * dispatches, each under a lease with a fencing token in the shared store.
 *
 * - Every `renewMs` the instance refreshes its membership, renews the leases it holds (one statement)
 *   and sweeps: it takes free leases up to its fair share (ceil(subscriptions / live members)) and,
 *   above it, gives one back (an idle one first), so that subscriptions spread over the members.
 * - A lease is valid here until `sentAt + leaseMs - marginMs` by this process's monotonic clock
 *   (`performance.now()`), where `sentAt` is taken before the statement that took or renewed it was
 *   sent: the store expires it `leaseMs` after it executed that statement, so this instance always
 *   stops first. Dispatch asks the fence before every send; once it is overdue nothing is sent, and the
 *   subscription is retired here (consumers closed with NOT_OWNER, a last fenced commit).
 * - A consumer (or an operation) for a subscription not running here claims its lease when it is free;
 *   otherwise it is answered NOT_OWNER with the owner's advertised addresses (the redirect).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { DeliveryEngine, Fence } from '../delivery/engine.ts';
import { CdsError } from '../errors/index.ts';
import type { LeaseStore, LeaseView, MemberAddress } from '../state/leases-port.ts';
import type { Placement, SubscriptionService } from '../subscriptions/index.ts';

/** A member id for this process: host, pid and a random suffix (unique across restarts). */
export function newMemberId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** Options of a {@link ClusterCoordinator}. */
export interface CoordinatorOptions {
  /** This instance's member id (default: host, pid and a random suffix). */
  readonly id?: string;
  /** How long a lease lasts in the store after each renewal, in ms. */
  readonly leaseMs: number;
  /** How often leases are renewed and the sweep runs, in ms (at most a third of `leaseMs`). */
  readonly renewMs: number;
  /** The addresses clients are redirected to (may change once the listeners are bound). */
  readonly address?: MemberAddress;
  readonly onError: (e: unknown) => void;
  /** The monotonic clock in ms (tests); default `performance.now()`. */
  readonly now?: () => number;
}

interface Held {
  readonly token: number;
  /** Monotonic ms until which this instance may dispatch under the lease. */
  validUntil: number;
}

/** Places subscriptions on this instance under leases (the `Placement` of SubscriptionService). */
export class ClusterCoordinator implements Placement {
  /** This instance's member id (the owner of its leases). */
  readonly id: string;
  readonly #store: LeaseStore;
  readonly #opts: CoordinatorOptions;
  readonly #now: () => number;
  readonly #marginMs: number;
  readonly #held = new Map<string, Held>();
  /** The leases as the last sweep (or claim) saw them, for redirects and views. */
  #seen = new Map<string, LeaseView>();
  readonly #chains = new Map<string, Promise<unknown>>();
  /** Subscriptions given back by the sweep, not claimed again before this time (monotonic ms). */
  readonly #cooling = new Map<string, number>();
  #address: MemberAddress;
  #members = 1;
  #svc: SubscriptionService | undefined;
  #engine: DeliveryEngine | undefined;
  #round: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #checker: NodeJS.Timeout | undefined;
  #taking = true;

  constructor(store: LeaseStore, opts: CoordinatorOptions) {
    if (opts.renewMs * 3 > opts.leaseMs)
      throw new CdsError(
        'CONFIG_INVALID',
        `cluster.renewMs (${opts.renewMs}) must be at most a third of cluster.leaseMs (${opts.leaseMs})`,
      );
    this.#store = store;
    this.#opts = opts;
    this.#now = opts.now ?? (() => performance.now());
    this.#marginMs = Math.round(opts.leaseMs / 5);
    this.#address = opts.address ?? {};
    this.id = opts.id ?? newMemberId();
  }

  /** Joins the cluster: registers, takes free leases now, then renews and sweeps every `renewMs`. */
  async start(svc: SubscriptionService, engine: DeliveryEngine): Promise<void> {
    this.#svc = svc;
    this.#engine = engine;
    await this.#runRound();
    this.#timer = setInterval(() => void this.#runRound().catch(this.#opts.onError), this.#opts.renewMs);
    this.#timer.unref();
    const every = Math.max(10, Math.min(100, Math.floor(this.#opts.renewMs / 4)));
    this.#checker = setInterval(() => this.#expireOverdue(), every);
    this.#checker.unref();
  }

  /** Sets the advertised addresses (once the listeners are bound); the next heartbeat publishes them. */
  advertise(address: MemberAddress): void {
    this.#address = address;
    void this.#runRound().catch(this.#opts.onError);
  }

  /** Subscriptions whose cursor commit the store refused for a stale token: their lease moved. */
  fenced(names: readonly string[]): void {
    for (const name of names) {
      const h = this.#held.get(name);
      if (h !== undefined)
        this.#lose(name, h.token, `the lease of subscription '${name}' moved; reconnect`, false);
    }
  }

  /** The subscriptions this instance holds, with their tokens. */
  held(): ReadonlyMap<string, number> {
    return new Map([...this.#held].map(([n, h]) => [n, h.token]));
  }

  // ------------------------------------------------------------ Placement

  async claim(name: string): Promise<void> {
    await this.#serial(name, async () => {
      if (this.#held.has(name) && this.#engine?.get(name) !== undefined) return;
      const seen = this.#seen.get(name);
      if (!this.#taking || (this.#cooling.get(name) ?? 0) > this.#now()) throw this.#notOwner(name, seen);
      const sentAt = this.#now();
      const token = (await this.#acquireWithin(name)).get(name);
      if (token === undefined) {
        const [view] = await this.#store.leases([name]);
        if (view === undefined) throw new CdsError('NOT_FOUND', `no subscription '${name}'`);
        this.#seen.set(name, view);
        throw this.#notOwner(name, view);
      }
      if (!(await this.#run(name, token, sentAt)))
        throw new CdsError('NOT_FOUND', `no subscription '${name}'`);
    });
  }

  /**
   * Acquires one lease for a waiting consumer, within half a lease: past that (the store is slow or
   * unreachable from here) the consumer is told NOT_OWNER with no owner, so that it tries another
   * instance; a lease the late statement takes after all is released.
   */
  async #acquireWithin(name: string): Promise<Map<string, number>> {
    const acquiring = this.#store.acquire(this.id, [name], this.#opts.leaseMs);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), this.#opts.leaseMs / 2)));
    try {
      const got = await Promise.race([acquiring, late]).catch((e: unknown) => {
        throw this.#notOwner(name, undefined, e);
      });
      if (got !== 'late') return got;
      void acquiring.then((m) => this.#store.release(this.id, m)).catch(() => undefined);
      throw this.#notOwner(name, undefined);
    } finally {
      clearTimeout(timer);
    }
  }

  changed(name: string): void {
    void name;
    void this.#runRound().catch(this.#opts.onError);
  }

  owner(name: string): Record<string, unknown> | undefined {
    if (this.#held.has(name)) return { id: this.id, here: true, ...this.#address };
    const v = this.#seen.get(name);
    if (v === undefined) return undefined;
    return v.owner === null ? { id: null } : { id: v.owner, here: false, ...v.address };
  }

  // ------------------------------------------------------------ rounds

  /** One round at a time; a call during a round waits for it (and runs no second one). */
  #runRound(): Promise<void> {
    this.#round ??= this.#roundNow().finally(() => (this.#round = undefined));
    return this.#round;
  }

  async #roundNow(): Promise<void> {
    const members = await this.#store.heartbeat({ id: this.id, ...this.#address }, this.#opts.leaseMs);
    this.#members = Math.max(1, members.length);
    const held = this.held();
    if (held.size > 0) {
      const sentAt = this.#now();
      const kept = await this.#store.renew(this.id, held, this.#opts.leaseMs);
      for (const [name, token] of held) {
        const h = this.#held.get(name);
        if (h === undefined || h.token !== token) continue; // lost or taken again meanwhile
        if (kept.has(name)) h.validUntil = Math.max(h.validUntil, this.#validFrom(sentAt));
        else this.#lose(name, token, `the lease of subscription '${name}' was lost; reconnect`, false);
      }
    }
    if (this.#taking) await this.#sweep();
  }

  /** Takes free leases up to the fair share, or gives one back above it. */
  async #sweep(): Promise<void> {
    const views = await this.#store.leases();
    this.#seen = new Map(views.map((v) => [v.name, v]));
    const fair = Math.ceil(views.length / this.#members);
    const now = this.#now();
    for (const [n, until] of this.#cooling) if (until <= now) this.#cooling.delete(n);
    if (this.#held.size < fair) {
      const free = views
        .filter((v) => (v.owner === null || v.owner === this.id) && !this.#held.has(v.name))
        .filter((v) => !this.#cooling.has(v.name))
        .map((v) => v.name)
        .slice(0, fair - this.#held.size);
      if (free.length === 0) return;
      const sentAt = this.#now();
      const got = await this.#store.acquire(this.id, free, this.#opts.leaseMs);
      await Promise.all(
        [...got].map(([name, token]) =>
          this.#serial(name, async () => {
            if ((this.#held.get(name)?.token ?? 0) > token) return; // a claim took it again since
            await this.#run(name, token, sentAt);
          }).catch(this.#opts.onError),
        ),
      );
    } else if (this.#held.size > fair) {
      const consumers = (n: string) => Number(this.#engine?.get(n)?.status()['consumers'] ?? 0);
      const [name] = [...this.#held.keys()].sort((a, b) => consumers(a) - consumers(b));
      const h = name === undefined ? undefined : this.#held.get(name);
      if (name === undefined || h === undefined) return;
      this.#cooling.set(name, now + this.#opts.leaseMs);
      this.#lose(name, h.token, `subscription '${name}' moves to another instance; reconnect`, true);
    }
  }

  /** Starts a subscription here under a lease just taken; false (and released) if it is gone. */
  async #run(name: string, token: number, sentAt: number): Promise<boolean> {
    this.#held.set(name, { token, validUntil: this.#validFrom(sentAt) });
    const fence: Fence = { token, valid: () => this.#valid(name, token) };
    let ran = false;
    try {
      ran = (await this.#svc?.runLeased(name, fence)) === true;
    } finally {
      if (!ran && this.#held.get(name)?.token === token) {
        this.#held.delete(name);
        await this.#store.release(this.id, new Map([[name, token]])).catch(this.#opts.onError);
      }
    }
    return ran;
  }

  #validFrom(sentAt: number): number {
    return sentAt + this.#opts.leaseMs - this.#marginMs;
  }

  #valid(name: string, token: number): boolean {
    const h = this.#held.get(name);
    return h !== undefined && h.token === token && this.#now() < h.validUntil;
  }

  /** Retires every subscription whose lease is overdue by the monotonic clock. */
  #expireOverdue(): void {
    const now = this.#now();
    for (const [name, h] of this.#held)
      if (now >= h.validUntil)
        this.#lose(
          name,
          h.token,
          `the lease of subscription '${name}' could not be renewed; reconnect`,
          true,
        );
  }

  /**
   * Stops running a subscription whose lease ends here; with `release`, frees the lease after the last
   * commit (when it may still be ours), so that another instance need not wait for it to expire.
   */
  #lose(name: string, token: number, message: string, release: boolean): void {
    if (this.#held.get(name)?.token !== token) return;
    this.#held.delete(name);
    void this.#serial(name, async () => {
      await this.#svc?.stopLeased(name, message);
      if (release) await this.#store.release(this.id, new Map([[name, token]]));
    }).catch(this.#opts.onError);
  }

  #notOwner(name: string, v: LeaseView | undefined, cause?: unknown): CdsError {
    const owner = v?.owner ? { id: v.owner, ...v.address } : null;
    const where = owner === null ? '' : ` (${owner.url ?? owner.grpc ?? owner.id})`;
    return new CdsError(
      'NOT_OWNER',
      owner !== null
        ? `subscription '${name}' is dispatched by another instance${where}; connect there`
        : v === undefined
          ? `this instance cannot take the lease of subscription '${name}' now; try another instance`
          : `no instance dispatches subscription '${name}' yet; retry shortly`,
      { details: { subscription: name, owner }, retryAfterSeconds: 1, cause },
    );
  }

  /** Runs the work on one subscription one at a time (claims, starts, retirements). */
  async #serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#chains.set(name, tail);
    try {
      return await run;
    } finally {
      if (this.#chains.get(name) === tail) this.#chains.delete(name);
    }
  }

  // ------------------------------------------------------------ shutdown

  /** Takes no lease any more (shutdown begins); held leases are still renewed until `close`. */
  stopTaking(): void {
    this.#taking = false;
  }

  /**
   * Leaves the cluster: stops renewing, releases every lease held (call it after the engine's last
   * commit, so that a successor reads that commit) and removes this member.
   */
  async close(): Promise<void> {
    this.#taking = false;
    clearInterval(this.#timer);
    clearInterval(this.#checker);
    await this.#round?.catch(() => undefined);
    await Promise.all([...this.#chains.values()]);
    const held = this.held();
    this.#held.clear();
    await this.#store.release(this.id, held).catch(this.#opts.onError);
    await this.#store.leave(this.id).catch(this.#opts.onError);
  }
}
