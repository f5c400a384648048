/**
 * The harness side of the subscribers: creates their subscriptions through the REST API, runs them
 * in a few processes of their own (bench/lib/subscriber.ts), follows their progress and stops them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { SubscriberPlan } from './profile.ts';
import type {
  SubscriberProcessCommand,
  SubscriberProcessConfig,
  SubscriberProcessMessage,
  SubscriberStats,
} from './subscriber.ts';

/** How long no receipt at all must arrive, once the expected count is reached, for the drain to end. */
const SETTLE_MS = 1000;

const SUBSCRIBER = fileURLToPath(new URL('./subscriber.ts', import.meta.url));

function deferred<T>() {
  let resolve: (v: T) => void = () => {};
  let reject: (e: Error) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // observed where awaited; never an unhandled rejection
  return { promise, resolve, reject };
}

async function forEachLimited<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Creates one subscription per plan (topics `decisions.>`, the plan's CEL filter, `extra` fields). */
export async function createSubscriptions(
  url: string,
  key: string,
  plans: readonly SubscriberPlan[],
  extra: Readonly<Record<string, unknown>>,
  start: 'latest' | 'earliest',
): Promise<void> {
  await forEachLimited(plans, 8, async (p) => {
    const body = {
      name: p.name,
      topics: ['decisions.>'],
      ...(p.cel === undefined ? {} : { filter: p.cel }),
      start,
      ...extra,
    };
    const res = await fetch(`${url}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== 201)
      throw new Error(`creating subscription ${p.name}: ${res.status} ${(await res.text()).slice(0, 500)}`);
    await res.arrayBuffer();
  });
}

/** Deletes the plans' subscriptions (runs against a service the harness did not start). */
export async function deleteSubscriptions(url: string, key: string, plans: readonly SubscriberPlan[]) {
  await forEachLimited(plans, 8, async (p) => {
    const res = await fetch(`${url}/v1/subscriptions/${encodeURIComponent(p.name)}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${key}` },
    });
    await res.arrayBuffer();
  });
}

/** Options of {@link SubscriberFleet}. */
export interface FleetOptions extends Omit<SubscriberProcessConfig, 'subscribers'> {
  readonly plans: readonly SubscriberPlan[];
  /** Subscriber processes (at most one per subscriber). */
  readonly processes: number;
  /** Instances of a service in cluster mode: process p connects first to instance p mod n. */
  readonly instances?: readonly { readonly url: string; readonly grpcAddress: string }[];
  /** Called with each process's name and pid as it starts (CPU and memory are read from /proc). */
  readonly onProcess: (name: string, pid: number) => void;
}

/** Subscriber processes; subscriber i runs in process i mod processes. */
export class SubscriberFleet {
  readonly #children: ChildProcess[] = [];
  readonly #progress: { receipts: number; firsts: number }[] = [];
  readonly #ready: Promise<void>;
  readonly #stopped: Promise<SubscriberStats[]>[] = [];
  #failure: Error | undefined;

  constructor(opts: FleetOptions) {
    const k = Math.max(1, Math.min(opts.processes, opts.plans.length));
    const readies: Promise<void>[] = [];
    for (let p = 0; p < k; p++) {
      const child = fork(SUBSCRIBER, [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const name = `subscribers-${p + 1}`;
      opts.onProcess(name, child.pid!);
      this.#children.push(child);
      this.#progress.push({ receipts: 0, firsts: 0 });
      const ready = deferred<void>();
      const stopped = deferred<SubscriberStats[]>();
      readies.push(ready.promise);
      this.#stopped.push(stopped.promise);
      const failed = (e: Error) => {
        this.#failure = e;
        ready.reject(e);
        stopped.reject(e);
      };
      let done = false;
      child.on('message', (m: SubscriberProcessMessage) => {
        if (m.type === 'ready') ready.resolve();
        else if (m.type === 'progress') this.#progress[p] = { receipts: m.receipts, firsts: m.firsts };
        else if (m.type === 'stopped') {
          done = true;
          stopped.resolve([...m.subscribers]);
        } else if (m.type === 'failed') {
          done = true;
          failed(new Error(`${name} failed: ${m.error}`));
        }
      });
      child.on('exit', (code, signal) => {
        if (!done) failed(new Error(`${name} exited (code ${code}, signal ${signal})`));
      });
      const { plans: _p, processes: _n, onProcess: _o, instances, ...common } = opts;
      const command: SubscriberProcessCommand = {
        type: 'start',
        config: {
          ...common,
          ...(instances === undefined || instances.length === 0 ? {} : instances[p % instances.length]),
          subscribers: opts.plans
            .filter((s) => s.index % k === p)
            .map((s) => ({ index: s.index, name: s.name, transport: s.transport })),
        },
      };
      child.send(command);
    }
    this.#ready = Promise.all(readies).then(() => undefined);
  }

  /** Resolves when every subscriber has subscribed; rejects after `timeoutMs`. */
  async ready(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#ready,
        new Promise<never>((_, rej) => {
          timer = setTimeout(
            () => rej(new Error(`subscribers not subscribed within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Receipts so far, all processes (as last reported, every 250 ms). */
  get receipts(): number {
    return this.#progress.reduce((a, b) => a + b.receipts, 0);
  }

  /** Receipts with deliveryCount 1 so far, all processes. */
  get firsts(): number {
    return this.#progress.reduce((a, b) => a + b.firsts, 0);
  }

  /** A process that failed, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /**
   * Waits for the last deliveries: until at least `expected` first deliveries (deliveryCount 1)
   * have arrived and then none at all for {@link SETTLE_MS} (`complete`: a first delivery of a
   * decision whose publish was not acknowledged counts too, so the count alone could end early),
   * or none for `idleMs` (`idle`), or `maxMs` passed (`limit`), or a process failed (`failed`).
   */
  async drain(
    expected: number,
    idleMs: number,
    maxMs: number,
  ): Promise<{ ms: number; endedBy: 'complete' | 'idle' | 'limit' | 'failed' }> {
    const t0 = performance.now();
    let last = -1;
    let lastChange = t0;
    for (;;) {
      const now = performance.now();
      const r = this.receipts;
      if (r !== last) {
        last = r;
        lastChange = now;
      }
      const quietMs = now - lastChange;
      const endedBy = this.#failure
        ? 'failed'
        : this.firsts >= expected && quietMs >= SETTLE_MS
          ? 'complete'
          : quietMs >= idleMs
            ? 'idle'
            : now - t0 >= maxMs
              ? 'limit'
              : undefined;
      if (endedBy !== undefined) return { ms: Math.round(now - t0), endedBy };
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  /** Stops every subscriber; resolves with their statistics (files are complete then). */
  async stop(): Promise<SubscriberStats[]> {
    for (const c of this.#children)
      if (c.connected) c.send({ type: 'stop' } satisfies SubscriberProcessCommand);
    const all = await Promise.all(this.#stopped);
    return all.flat().sort((a, b) => a.index - b.index);
  }

  /** Kills every process (after a failure). */
  kill(): void {
    for (const c of this.#children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}
