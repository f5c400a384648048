/**
 * A replay of one subscription while 10 others consume live (issue 6, "what will be checked"): the
 * replaying subscription seeks to the earliest position of a backlog and reads all of it while
 * decisions keep coming; the 10 live subscribers see no pause (their longest wait between deliveries
 * during the replay is compared with the one before it), no duplicate and no gap (prevPosition,
 * GapDetector), and the replayer gets every position once, merged with the live ones, in key order
 * (halts and cancels excepted: they are expedited, DESIGN 5).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { Subscriber, type Delivery } from '../../src/client/index.ts';
import { createDecisionGenerator } from '../helpers/decisions.ts';
import { publish, REPO_ROOT, startServer, type PublishAck, type ServerHandle } from '../helpers/server.ts';

const BACKLOG = 20_000;
const LIVE = 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const offsetOf = (p: string) => Number(p.split(':')[1]);

/** A consumer that acks what it gets and remembers when and what. */
class Consumer {
  readonly sub: Subscriber;
  readonly got: Delivery[] = [];
  readonly arrivals: number[] = [];
  gaps = 0;
  errors: string[] = [];
  #run: Promise<void>;

  constructor(url: string, key: string, name: string, credits: number) {
    const sub = new Subscriber({ url, apiKey: key, subscription: name, credits });
    this.sub = sub;
    this.#run = (async () => {
      for await (const e of sub.events()) {
        if (e.type === 'deliveries') {
          this.arrivals.push(performance.now());
          this.got.push(...e.deliveries);
          void sub.ack(e.deliveries.map((d) => d.position));
        } else if (e.type === 'gap') this.gaps++;
        else if (e.type === 'error') this.errors.push(e.error.code);
      }
    })();
  }

  /** Longest wait between two deliveries that arrived in [from, to). */
  maxGap(from: number, to: number): number {
    let max = 0;
    let prev = from;
    for (const t of this.arrivals) {
      if (t < from) continue;
      if (t >= to) break;
      max = Math.max(max, t - prev);
      prev = t;
    }
    return Math.max(max, to - prev);
  }

  async close(): Promise<void> {
    this.sub.close();
    await this.#run;
  }
}

/**
 * The replaying consumer runs in a process of its own, so that decoding its 20,000 deliveries does not
 * delay this process's view of when the live ones arrive. It acks what it gets, reports its count
 * every 100 ms, and on the end of its stdin prints what it got ([position, key, expedited]).
 */
const REPLAYER = `
import { Subscriber } from './src/client/index.ts';
const [url, apiKey, subscription] = process.argv.slice(1);
const s = new Subscriber({ url, apiKey, subscription, credits: 2000 });
const got = [];
setInterval(() => process.stdout.write(JSON.stringify({ n: got.length }) + '\\n'), 100).unref();
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({ got }) + '\\n', () => process.exit(0));
});
process.stdin.resume();
for await (const e of s.events()) {
  if (e.type !== 'deliveries') continue;
  for (const d of e.deliveries) got.push([d.position, d.key, d.expedited === true]);
  void s.ack(e.deliveries.map((d) => d.position));
}
`;

class ChildReplayer {
  readonly child: ChildProcess;
  count = 0;
  got: [string, string, boolean][] | undefined;
  readonly #done: Promise<void>;

  constructor(url: string, key: string, name: string) {
    this.child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', REPLAYER, url, key, name],
      { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines = createInterface({ input: this.child.stdout! });
    this.#done = new Promise((resolve) => {
      lines.on('line', (l) => {
        const m = JSON.parse(l) as { n?: number; got?: [string, string, boolean][] };
        if (m.n !== undefined) this.count = m.n;
        if (m.got !== undefined) {
          this.got = m.got;
          resolve();
        }
      });
    });
  }

  /** Asks for what it got and waits for it. */
  async finish(): Promise<[string, string, boolean][]> {
    this.child.stdin!.end();
    await this.#done;
    return this.got ?? [];
  }
}

describe('replay of one subscription while 10 others consume live', { timeout: 600_000 }, () => {
  let server: ServerHandle;
  const consumers: Consumer[] = [];
  const children: ChildProcess[] = [];
  after(async () => {
    for (const c of consumers) await c.close();
    for (const c of children) c.kill();
    await server?.stop();
    server?.cleanup();
  });

  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  before(async () => {
    server = await startServer();
  });

  it('the live subscribers see no pause, no duplicate and no gap; the replay merges without duplicates', async () => {
    const gen = createDecisionGenerator({ seed: 21, portfolios: 40, idPrefix: 'rp' });
    // Far from expiring: the replay reads decisions received minutes ago, and expired ones are not delivered.
    const take = (n: number) => gen.take(n).map((d) => ({ ...d, expiresAt: '2099-01-01T00:00:00Z' }));
    for (let i = 0; i < BACKLOG; i += 2000) {
      const r = await publish(server.url, server.adminKey, take(2000));
      assert.equal(r.status, 200);
    }
    for (const name of ['replayer', ...Array.from({ length: LIVE }, (_, i) => `live-${i}`)]) {
      const r = await api('POST', '/v1/subscriptions', { name, topics: ['decisions.>'], start: 'latest' });
      assert.equal(r.status, 201, await r.text());
    }
    const live = Array.from(
      { length: LIVE },
      (_, i) => new Consumer(server.url, server.adminKey, `live-${i}`, 500),
    );
    consumers.push(...live);
    // Live traffic for the whole test: 10 decisions every 50 ms.
    const published: string[] = [];
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        const r = await publish(server.url, server.adminKey, take(10));
        assert.equal(r.status, 200);
        published.push(...(r.body as { results: PublishAck[] }).results.map((x) => x.position));
        await sleep(50);
      }
    })();
    const t0 = performance.now();
    await sleep(4000);
    const t1 = performance.now();
    // The replay: seek to the earliest position, then a consumer that takes it all (with credits).
    const seek = await api('POST', '/v1/subscriptions/replayer/seek', { to: 'earliest' });
    assert.equal(seek.status, 200, await seek.text());
    const replayer = new ChildReplayer(server.url, server.adminKey, 'replayer');
    children.push(replayer.child);
    const deadline = Date.now() + 300_000;
    while (replayer.count < BACKLOG + published.length - 40 && Date.now() < deadline) await sleep(50);
    const t2 = performance.now();
    publishing = false;
    await publisher;
    const end = offsetOf(published.at(-1) as string) + 1;
    while (
      (replayer.count < end || live.some((c) => c.got.length < published.length)) &&
      Date.now() < deadline
    )
      await sleep(50);

    const before = Math.max(...live.map((c) => c.maxGap(t0 + 1000, t1)));
    const during = Math.max(...live.map((c) => c.maxGap(t1, t2)));
    process.stderr.write(
      `[history-replay] replayed ${BACKLOG} + live in ${Math.round(t2 - t1)} ms; ` +
        `live subscribers' longest wait between deliveries: ${Math.round(before)} ms before, ${Math.round(during)} ms during the replay\n`,
    );
    // No pause: the replay does not hold the others up beyond the jitter of this shared machine.
    assert.ok(during <= 3 * before + 250, `longest wait ${during} ms during the replay, ${before} ms before`);

    for (const c of live) {
      assert.deepEqual(c.errors, []);
      assert.equal(c.gaps, 0, 'no gap');
      const positions = c.got.map((d) => d.position);
      assert.equal(new Set(positions).size, positions.length, 'no duplicate');
      assert.ok(c.got.every((d) => d.deliveryCount === 1));
      assert.deepEqual(
        [...positions].sort((a, b) => offsetOf(a) - offsetOf(b)),
        published,
        'every live decision, once',
      );
    }
    // The replayer: every position from the first to the end once, in order per key.
    const got = await replayer.finish();
    const positions = got.map(([p]) => offsetOf(p));
    assert.equal(new Set(positions).size, positions.length, 'no duplicate in the replay');
    assert.deepEqual(
      [...positions].sort((a, b) => a - b),
      Array.from({ length: end }, (_, i) => i),
    );
    const lastOfKey = new Map<string, number>();
    for (const [p, key, expedited] of got) {
      if (expedited) continue; // halt and cancel overtake their key's waiting decisions (DESIGN 5)
      assert.ok((lastOfKey.get(key) ?? -1) < offsetOf(p), `key ${key} in order`);
      lastOfKey.set(key, offsetOf(p));
    }
  });
});
