/**
 * gRPC throughput (ADR 0012): `npx tsx bench/grpc.ts [--count N] [--batch B] [--inflight K]
 * [--credits C]`. Starts the service in a child process, publishes N decisions through one
 * PublishStream (batches of B, K batches in flight), then reads them through one Session (credits
 * granted C at a time, cumulative acks per partition per frame). Prints decisions/s of each phase,
 * the service's CPU time per decision in each (Linux), and the load average. With
 * CDS_BENCH_CPU_PROF=DIR the service is profiled (node --cpu-prof) into DIR.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { bearer, connect } from '../src/client/grpc.ts';
import type { PublishStreamResponse } from '../src/transports/grpc/gen/cds/v1/decisions.ts';
import type { SessionRequest, SessionResponse } from '../src/transports/grpc/gen/cds/v1/subscriptions.ts';
import { createDecisionGenerator } from '../test/helpers/decisions.ts';
import { cleanupTempDirs, startServer } from '../test/helpers/server.ts';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const COUNT = arg('count', 200_000);
const BATCH = arg('batch', 500);
const INFLIGHT = arg('inflight', 8);
const CREDITS = arg('credits', 20_000);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * CPU time of a process in ms (Linux /proc, 10 ms ticks), or NaN elsewhere: on a shared machine the
 * service's CPU per delivery says more than wall-clock rates, which follow what others leave free.
 */
function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

const sessionReq = (m: Partial<SessionRequest>): SessionRequest => ({
  id: 0,
  subscribe: undefined,
  ack: undefined,
  nack: undefined,
  credits: undefined,
  update: undefined,
  heartbeat: undefined,
  ...m,
});

async function main(): Promise<void> {
  const port = await freePort();
  // CDS_BENCH_CPU_PROF=DIR: the service runs under node --cpu-prof, its profiles written to DIR.
  const profDir = process.env['CDS_BENCH_CPU_PROF'];
  const server = await startServer({
    ...(profDir === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] }),
    env: {
      CDS_GRPC_PORT: String(port),
      CDS_RATE_REQUESTS_PER_SECOND: '1000000',
      CDS_RATE_DECISIONS_PER_SECOND: '1000000000',
    },
  });
  const address = `127.0.0.1:${port}`;
  const client = connect(address);
  try {
    const name = `bench-grpc-${process.pid}`;
    const created = await fetch(`${server.url}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, topics: ['decisions.>'], maxInFlight: 100_000 }),
    });
    if (created.status !== 201)
      throw new Error(`create subscription: ${created.status} ${await created.text()}`);

    const gen = createDecisionGenerator({ seed: 42, idPrefix: `bg${process.pid}` });
    const batches: Buffer[][] = [];
    for (let i = 0; i < COUNT; i += BATCH)
      batches.push(gen.take(Math.min(BATCH, COUNT - i)).map((d) => Buffer.from(JSON.stringify(d))));

    // Phase 1: one PublishStream.
    const pub = client.decisions.publishStream(bearer(server.adminKey));
    let answered = 0;
    let stored = 0;
    let next = 0;
    const cpu0 = cpuMs(server.pid);
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const send = () => {
        while (next < batches.length && next - answered < INFLIGHT) {
          pub.write({ batch: { batchId: next + 1, decisions: batches[next]! }, heartbeat: undefined });
          next++;
        }
      };
      pub.on('data', (m: PublishStreamResponse) => {
        if (m.result === undefined) return;
        if (m.result.error !== undefined) return reject(new Error(JSON.stringify(m.result.error)));
        answered++;
        stored += m.result.results.length;
        if (answered === batches.length) resolve();
        else send();
      });
      pub.on('error', reject);
      send();
    });
    const publishS = (performance.now() - t0) / 1000;
    const cpu1 = cpuMs(server.pid);
    pub.end();

    // Phase 2: one Session.
    const session = client.subscriptions.session(bearer(server.adminKey));
    let received = 0;
    let granted = CREDITS;
    const t1 = performance.now();
    await new Promise<void>((resolve, reject) => {
      session.on('data', (m: SessionResponse) => {
        if (m.error !== undefined) return reject(new Error(JSON.stringify(m.error)));
        const ds = m.deliveries?.deliveries;
        if (ds === undefined || ds.length === 0) return;
        received += ds.length;
        // Cumulative ack per partition: the last delivery of each partition in this frame.
        const last = new Map<string, string>();
        for (const d of ds) {
          const head = Buffer.from(d.subarray(0, 64)).toString('latin1');
          const pos = head.slice(13, head.indexOf('"', 13));
          last.set(pos.slice(0, pos.indexOf(':')), pos);
        }
        for (const upTo of last.values()) session.write(sessionReq({ ack: { positions: [], upTo } }));
        if (received >= COUNT) return resolve();
        if (granted - received < CREDITS / 2) {
          session.write(sessionReq({ credits: { n: CREDITS } }));
          granted += CREDITS;
        }
      });
      session.on('error', reject);
      session.write(
        sessionReq({ id: 1, subscribe: { subscription: name, credits: CREDITS, resume: Buffer.alloc(0) } }),
      );
    });
    const sessionS = (performance.now() - t1) / 1000;
    const cpu2 = cpuMs(server.pid);
    session.end();

    const out = {
      bench: 'grpc',
      count: COUNT,
      batch: BATCH,
      inflight: INFLIGHT,
      credits: CREDITS,
      publishStream: {
        decisions: stored,
        seconds: +publishS.toFixed(3),
        perSecond: Math.round(stored / publishS),
        serviceCpuUsPerItem: +(((cpu1 - cpu0) * 1000) / stored).toFixed(1),
      },
      session: {
        deliveries: received,
        seconds: +sessionS.toFixed(3),
        perSecond: Math.round(received / sessionS),
        serviceCpuUsPerItem: +(((cpu2 - cpu1) * 1000) / received).toFixed(1),
      },
      loadAverage: +loadavg()[0]!.toFixed(1),
    };
    console.log(JSON.stringify(out));
  } finally {
    client.close();
    await server.stop();
    cleanupTempDirs();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
