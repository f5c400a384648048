/**
 * A seeded randomized run of the delivery engine checked against a reference model of DESIGN 5.
 *
 * The driver publishes decisions with many keys and revisions to a real app, consumes two
 * subscriptions with consumer groups (WebSocket subscribers and the REST pull consumer), and
 * injects faults: dropped connections, nacks with delays, deliveries left to time out, consumers
 * joining and leaving, and graceful restarts on the same data directory. At the end it checks:
 * - every decision a subscription matches (patterns, filter) was acked, and no other was delivered;
 * - the engine resolved each of them as acked exactly once (counters summed over the restarts) and
 *   holds nothing pending;
 * - per key, first deliveries came in log order;
 * - deliveryCount grows on every redelivery of a position;
 * - prevPosition names the previous decision of the key delivered by the subscription, and no
 *   consumer reported a gap (nothing was lost at a client; handovers are not gaps);
 * - at least 100 deliveries were in flight at once.
 * The seed is printed; CDS_TEST_SEED=<seed> replays a run.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Subscriber, GapDetector, type Delivery } from '../../src/client/index.ts';
import type { Decision } from '../../src/domain/decision.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import { mulberry32, testSeed } from '../helpers/decisions.ts';
import { ackPull, createSub, dec, fetchOnce, publish, status, waitFor } from './harness.ts';

const SEED = testSeed('delivery-model');
const rnd = mulberry32(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
const PHASES = 3;
const BATCHES_PER_PHASE = 14;
const KEYS = 24;
const ASSETS = ['equity', 'etf', 'future'] as const;

/** What the contract says one subscription must see, and what it saw. */
class SubModel {
  /** Positions the subscription matches (published after it was created). */
  readonly expected = new Set<string>();
  readonly keyOf = new Map<string, string>();
  /** Per key, positions in the order of their first receipt by any consumer. */
  readonly firstOrder = new Map<string, string[]>();
  readonly counts = new Map<string, number[]>();
  /** Per position, every prevPosition it was delivered with, across restarts. */
  readonly prevsEver = new Map<string, Set<string | null>>();
  readonly acked = new Set<string>();
  /** Acks whose answer was lost with the connection (the engine's counters tell). */
  readonly maybeAcked = new Set<string>();
  readonly violations: string[] = [];
  readonly gaps: unknown[] = [];
  ackedByEngine = 0;
  delivered = 0;

  constructor(
    readonly name: string,
    readonly matches: (d: Decision) => boolean,
  ) {}

  observe(d: Delivery, by = ''): void {
    this.delivered++;
    if (process.env['CDS_MODEL_TRACE'] === d.key || process.env['CDS_MODEL_TRACE'] === '*')
      process.stderr.write(
        `[trace] ${this.name} ${d.key} ${by} ${d.position} n=${d.deliveryCount} prev=${d.prevPosition} ho=${d.handover ?? ''}\n`,
      );
    if (!this.expected.has(d.position))
      this.violations.push(`${this.name}: delivered ${d.position}, which it does not match`);
    const c = this.counts.get(d.position);
    if (c === undefined) {
      this.counts.set(d.position, [d.deliveryCount]);
      const l = this.firstOrder.get(d.key) ?? [];
      l.push(d.position);
      this.firstOrder.set(d.key, l);
    } else {
      if (d.deliveryCount <= (c[c.length - 1] ?? 0))
        this.violations.push(
          `${this.name}: ${d.position} came with deliveryCount ${d.deliveryCount} after ${c}`,
        );
      c.push(d.deliveryCount);
    }
    let ever = this.prevsEver.get(d.position);
    if (ever === undefined) this.prevsEver.set(d.position, (ever = new Set()));
    ever.add(d.prevPosition);
  }

  /** The end-of-run comparison. */
  verify(inFlightMax: number): string[] {
    const out = [...this.violations];
    for (const pos of this.expected)
      if (!this.acked.has(pos) && !this.maybeAcked.has(pos)) out.push(`${this.name}: ${pos} never acked`);
    if (this.ackedByEngine !== this.expected.size)
      out.push(`${this.name}: the engine acked ${this.ackedByEngine} times, expected ${this.expected.size}`);
    const off = (p: string) => Number(p.split(':')[1]);
    for (const [key, l] of this.firstOrder) {
      for (let i = 1; i < l.length; i++)
        if (off(l[i] as string) <= off(l[i - 1] as string))
          out.push(`${this.name}: key ${key} first delivered ${l[i]} after ${l[i - 1]}`);
    }
    // prevPosition (DESIGN 5): the previous decision of the key this subscription delivered, across
    // restarts too: the key's chain of first receipts, each naming the one before (the first: none).
    for (const [key, l] of this.firstOrder) {
      for (let i = 0; i < l.length; i++) {
        const got = [...(this.prevsEver.get(l[i] as string) ?? [])];
        const want = i === 0 ? null : (l[i - 1] as string);
        if (got.length !== 1 || got[0] !== want)
          out.push(
            `${this.name}: ${l[i]} (key ${key}) had prevPosition ${JSON.stringify(got)}, expected ${want}`,
          );
      }
    }
    // A redelivery, also after a restart, names the prevPosition of the first delivery (ADR 0009).
    for (const [pos, ever] of this.prevsEver)
      if (ever.size !== 1)
        out.push(`${this.name}: ${pos} was delivered with prevPositions ${JSON.stringify([...ever])}`);
    if (this.gaps.length > 0)
      out.push(`${this.name}: gaps reported ${JSON.stringify(this.gaps.slice(0, 3))}`);
    void inFlightMax;
    return out;
  }
}

/** Deliveries received and not yet answered, over every consumer (the in-flight figure). */
const inFlight = new Set<string>();
let inFlightMax = 0;
const took = (id: string) => {
  inFlight.add(id);
  inFlightMax = Math.max(inFlightMax, inFlight.size);
};

/** What a consumer does with one delivery, at random. */
function choose(d: Delivery): 'ack' | 'nack' | 'ignore' {
  const r = rnd();
  if (r < 0.04 && d.deliveryCount === 1) return 'ignore'; // left to the ack timeout
  if (r < 0.1 && d.deliveryCount < 4) return 'nack';
  return 'ack';
}

/** A WebSocket consumer of the group. */
class WsConsumer {
  readonly s: Subscriber;
  readonly #tag: string;
  #stopped = false;
  readonly #loop: Promise<void>;
  readonly #answers = new Set<Promise<unknown>>();

  constructor(
    url: string,
    readonly m: SubModel,
    n: number,
  ) {
    this.#tag = `ws${n}`;
    this.s = new Subscriber({
      url,
      apiKey: ADMIN_KEY,
      subscription: m.name,
      credits: 100,
      reconnect: { minMs: 20, maxMs: 200 },
    });
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const e = await this.s.next(100);
      if (e === undefined || this.#stopped) continue;
      if (e.type === 'gap')
        this.m.gaps.push({ key: e.key, expected: e.expected, last: e.last, got: e.got.position });
      if (e.type === 'disconnected')
        for (const id of [...inFlight]) if (id.startsWith(`${this.#tag}/`)) inFlight.delete(id);
      if (e.type !== 'deliveries') continue;
      const acks: string[] = [];
      const nacks: string[] = [];
      for (const d of e.deliveries) {
        this.m.observe(d, this.#tag);
        const a = choose(d);
        if (a === 'ack') acks.push(d.position);
        else if (a === 'nack') nacks.push(d.position);
        else this.s.credit(1);
        if (a !== 'ignore') took(`${this.#tag}/${d.position}`);
      }
      const p = new Promise<void>((r) => setTimeout(r, 10 + rnd() * 120)).then(async () => {
        if (acks.length > 0) {
          const res = await this.s.ack(acks);
          if (res.length === 0) for (const x of acks) this.m.maybeAcked.add(x);
          for (const r of res)
            if (r.ok) this.m.acked.add(r.position);
            else this.m.violations.push(`${this.m.name}: ack of ${r.position} failed: ${r.code}`);
        }
        if (nacks.length > 0) await this.s.nack(nacks, Math.floor(rnd() * 150));
        for (const x of [...acks, ...nacks]) inFlight.delete(`${this.#tag}/${x}`);
      });
      this.#answers.add(p);
      void p.finally(() => this.#answers.delete(p));
    }
  }

  /** Stops consuming; waits for the answers under way; closes the connection. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    await Promise.all([...this.#answers]);
    this.s.close();
    for (const id of [...inFlight]) if (id.startsWith(`${this.#tag}/`)) inFlight.delete(id);
  }
}

/** The REST pull consumer of a subscription. */
class PullConsumer {
  #stopped = false;
  readonly #loop: Promise<void>;
  readonly gaps = new GapDetector();

  constructor(
    readonly t: TestApp,
    readonly m: SubModel,
  ) {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const ds = await fetchOnce(this.t, this.m.name, 40, 100);
      const acks: string[] = [];
      const nacks: string[] = [];
      for (const d of ds) {
        this.m.observe(d, 'pull');
        const g = this.gaps.check(d);
        if (g !== undefined)
          this.m.gaps.push({ key: g.key, expected: g.expected, last: g.last, got: d.position });
        const a = choose(d);
        if (a === 'ack') acks.push(d.position);
        else if (a === 'nack') nacks.push(d.position);
        if (a !== 'ignore') took(`pull/${d.position}`);
      }
      await new Promise((r) => setTimeout(r, rnd() * 60));
      if (acks.length > 0)
        for (const r of await ackPull(this.t, this.m.name, acks))
          if (r.ok) this.m.acked.add(r.position);
          else this.m.violations.push(`${this.m.name}: pull ack of ${r.position} failed: ${r.code}`);
      if (nacks.length > 0)
        await ackPull(this.t, this.m.name, nacks, 'nack', { delayMs: Math.floor(rnd() * 150) });
      for (const x of [...acks, ...nacks]) inFlight.delete(`pull/${x}`);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

describe('the delivery engine against the DESIGN 5 model', () => {
  let t: TestApp | undefined;
  after(async () => t?.close());

  it(
    `a randomized run with faults and restarts matches the model (seed ${SEED})`,
    { timeout: 120_000 },
    async () => {
      t = await startTestApp();
      const dir = t.dataDir;
      const policy = {
        ackTimeoutMs: 800,
        maxDeliveries: 100,
        backoff: { initialMs: 20, maxMs: 200, multiplier: 2 },
      };
      const s1 = new SubModel('model-ws', (d) => d.priority !== undefined && d.priority >= 4);
      const s2 = new SubModel('model-mixed', (d) => d.instrument.assetClass !== 'future');
      await createSub(t, { ...policy, filter: 'decision.priority >= 4' }, s1.name);
      await createSub(
        t,
        { ...policy, topics: ['decisions.equity.>', 'decisions.etf.>'], windowSize: 32 },
        s2.name,
      );
      const models = [s1, s2];

      const published: Decision[] = []; // latest revision of each decision
      let nextId = 0;
      let nConsumers = 0;
      let restarts = 0;
      let faults = 0;

      for (let phase = 0; phase < PHASES; phase++) {
        const url = (await t.app.listen()).http;
        const group: WsConsumer[] = [0, 1, 2].map(() => new WsConsumer(url, s1, ++nConsumers));
        const mixed: WsConsumer[] = [new WsConsumer(url, s2, ++nConsumers)];
        const pull = new PullConsumer(t, s2);
        let faulting = true;
        const faultLoop = (async () => {
          while (faulting) {
            await new Promise((r) => setTimeout(r, 80 + rnd() * 150));
            if (!faulting) break;
            const r = rnd();
            const all = [...group, ...mixed];
            if (r < 0.35) {
              pick(all).s.dropConnection();
              faults++;
            } else if (r < 0.55) {
              // a leave and a join: keys rebalance
              const list = rnd() < 0.7 ? group : mixed;
              const gone =
                list.length > 1 || list === mixed
                  ? list.splice(Math.floor(rnd() * list.length), 1)[0]
                  : undefined;
              await gone?.stop();
              list.push(new WsConsumer(url, list === group ? s1 : s2, ++nConsumers));
              faults++;
            }
          }
        })();

        for (let b = 0; b < BATCHES_PER_PHASE; b++) {
          const size = b % 5 === 0 ? 80 : 1 + Math.floor(rnd() * 20);
          const batch: Decision[] = [];
          const inBatch = new Set<string>();
          for (let i = 0; i < size; i++) {
            const prior = published.length > 0 && rnd() < 0.25 ? pick(published) : undefined;
            let d: Decision;
            if (prior !== undefined && !inBatch.has(prior.decisionId)) {
              d = {
                ...prior,
                revision: prior.revision + 1,
                quantity: String(1 + Math.floor(rnd() * 900)),
                priority: Math.floor(rnd() * 10),
              };
            } else {
              const k = Math.floor(rnd() ** 2 * KEYS); // a few busy keys
              d = dec(900_000 + nextId++, {
                portfolioId: `pf-m${k}`,
                priority: Math.floor(rnd() * 10),
                instrument: { symbol: 'AAPL', assetClass: pick(ASSETS), venue: 'XNAS', currency: 'USD' },
              });
            }
            inBatch.add(d.decisionId);
            batch.push(d);
          }
          const pos = await publish(t, batch);
          if (process.env['CDS_MODEL_TRACE'] !== undefined)
            process.stderr.write(`[trace] published ${pos[0]}..${pos[pos.length - 1]} phase ${phase}\n`);
          batch.forEach((d, i) => {
            const at = published.findIndex((x) => x.decisionId === d.decisionId);
            if (at >= 0) published[at] = d;
            else published.push(d);
            for (const m of models)
              if (m.matches(d)) {
                m.expected.add(pos[i] as string);
                m.keyOf.set(pos[i] as string, d.portfolioId);
              }
          });
          if (b % 5 !== 4) await new Promise((r) => setTimeout(r, rnd() * 60));
        }

        if (phase === PHASES - 1) {
          faulting = false;
          await faultLoop;
          await waitFor(
            async () => {
              for (const m of models) {
                for (const p of m.expected) if (!m.acked.has(p) && !m.maybeAcked.has(p)) return false;
                if ((await status(t as TestApp, m.name)).pending !== 0) return false;
              }
              return true;
            },
            'every matching decision acked',
            60_000,
          );
        } else {
          await new Promise((r) => setTimeout(r, 300 + rnd() * 500)); // deliveries in flight at the restart
          faulting = false;
          await faultLoop;
        }
        await Promise.all([...group, ...mixed].map((c) => c.stop()));
        await pull.stop();
        for (const m of models) m.ackedByEngine += (await status(t, m.name)).counters.acked;
        if (phase < PHASES - 1) {
          await t.close({ keep: true });
          if (process.env['CDS_MODEL_TRACE'] !== undefined) process.stderr.write(`[trace] restart\n`);
          t = await startTestApp({}, dir);
          restarts++;
        }
      }

      const problems = models.flatMap((m) => m.verify(inFlightMax));
      if (inFlightMax < 100)
        problems.push(`at most ${inFlightMax} deliveries in flight, wanted at least 100`);
      const summary =
        `seed ${SEED}: ${published.length} decisions, ` +
        models.map((m) => `${m.name} expected ${m.expected.size} delivered ${m.delivered}`).join(', ') +
        `; ${restarts} restarts, ${faults} faults, ${nConsumers} consumers, max in flight ${inFlightMax}`;
      process.stderr.write(`[delivery-model] ${summary}\n`);
      assert.deepEqual(problems.slice(0, 20), [], `${summary} (replay with CDS_TEST_SEED=${SEED})`);
    },
  );
});
