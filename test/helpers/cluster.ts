/**
 * Cluster-mode instances in one process (ADR 0015): apps on one PostgreSQL database sharing one
 * SegmentLog, which stands in for the shared Pulsar log, each listening on free ports.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import pg from 'pg';
import pino from 'pino';
import type { SegmentLog } from '../../src/adapters/embedded/log/index.ts';
import { buildApp, type App } from '../../src/app.ts';
import { Subscriber, type Delivery } from '../../src/client/index.ts';
import { loadConfig } from '../../src/config/index.ts';
import type { EventLog } from '../../src/log/index.ts';
import { within } from './wait.ts';

/** The admin key of every cluster test instance. */
export const CLUSTER_ADMIN_KEY = 'cds_cluster-admin-key-0123456789abcdefghijkl';

/** One instance: its app and where clients reach it. */
export interface Instance {
  readonly app: App;
  readonly url: string;
  readonly grpc: string;
  readonly dataDir: string;
}

/** Starts an instance in cluster mode on `pgUrl` and the shared `log` (see {@link shared}). */
export async function startInstance(
  pgUrl: string,
  log: EventLog,
  cluster: { leaseMs: number; renewMs: number },
): Promise<Instance> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cds-cluster-'));
  const config = loadConfig({
    overrides: {
      dataDir,
      http: { port: 0 },
      grpc: { port: 0 },
      security: { adminKey: CLUSTER_ADMIN_KEY },
      state: { engine: 'postgres' },
      postgres: { url: pgUrl },
      cluster,
    },
  });
  const app = await buildApp(config, { logger: pino({ level: 'silent' }), log });
  const { http, grpc } = await app.listen();
  return { app, url: http, grpc, dataDir };
}

/** The log as an instance gets it: everything but `close`, which the test does once at the end. */
export function shared(log: SegmentLog): EventLog {
  return new Proxy(log, {
    get(target, p) {
      if (p === 'close') return async () => {};
      const v: unknown = Reflect.get(target, p);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as EventLog;
}

/** A request to an instance (injected, no socket) with the admin key; the body parsed. */
export async function request(
  i: Instance,
  method: string,
  url: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await i.app.http.inject({
    method: method as 'GET',
    url,
    headers: {
      authorization: `Bearer ${CLUSTER_ADMIN_KEY}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
  return { status: res.statusCode, body: JSON.parse(res.body || 'null') };
}

/** A receipt of one delivery by one consumer. */
export interface Receipt {
  readonly position: string;
  readonly key: string;
  readonly decisionId: string;
  readonly at: number;
  /** The instance the consumer was connected to. */
  readonly url: string;
}

/** A WebSocket consumer that acks everything and records what it received, and from where. */
export function consumer(
  subscription: string,
  urls: string[],
  receipts: Receipt[],
  events: string[],
): Subscriber {
  const s = new Subscriber({
    url: urls[0] as string,
    urls: urls.slice(1),
    apiKey: CLUSTER_ADMIN_KEY,
    subscription,
    credits: 200,
    reconnect: { minMs: 20, maxMs: 200 },
  });
  let url = '';
  void (async () => {
    for await (const e of s.events()) {
      if (e.type === 'connected') {
        url = e.url;
        events.push(`connected ${e.url} ${performance.now()}`);
      } else if (e.type === 'disconnected') events.push(`disconnected ${e.code} ${url} ${performance.now()}`);
      else if (e.type === 'deliveries') {
        const at = performance.now();
        for (const d of e.deliveries as Delivery[]) {
          const decision = d.decision as { decisionId: string };
          receipts.push({ position: d.position, key: d.key, decisionId: decision.decisionId, at, url });
        }
        void s.ack(e.deliveries.map((d) => d.position));
      }
    }
  })();
  return s;
}

/**
 * Checks one subscription's receipts (all its consumers'): first receipts of each key in log order,
 * and the instances that served it, in time order, follow `moves` (the lease's owners in turn; one may
 * be skipped) without ever going back: never two dispatchers at once.
 */
export function checkReceipts(name: string, receipts: readonly Receipt[], moves: readonly string[]): void {
  const list = receipts.slice().sort((x, y) => x.at - y.at);
  const seen = new Set<string>();
  const last = new Map<string, number>();
  for (const r of list) {
    if (seen.has(r.position)) continue;
    seen.add(r.position);
    const off = Number(r.position.split(':')[1]);
    assert.ok((last.get(r.key) ?? -1) < off, `${name}: ${r.key} went back to ${r.position}`);
    last.set(r.key, off);
  }
  const runs: string[] = [];
  for (const r of list) if (runs[runs.length - 1] !== r.url) runs.push(r.url);
  let i = 0;
  for (const u of runs) while (i < moves.length && moves[i] !== u) i++;
  assert.ok(i < moves.length, `${name} served by ${runs.join(' -> ')}; the lease went ${moves.join(' -> ')}`);
}

/** Which instance (its advertised URL) holds each subscription's lease now, from PostgreSQL. */
export async function leaseOwners(pgUrl: string): Promise<Map<string, string>> {
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  try {
    const { rows } = await c.query(
      `SELECT l.name, m.url FROM cds_leases l JOIN cds_members m ON m.id = l.owner
       WHERE l.expires_at > clock_timestamp()`,
    );
    return new Map(rows.map((r) => [r.name as string, r.url as string]));
  } finally {
    await c.end();
  }
}

/**
 * Per subscription a group of two consumers, one given the instances in `urls` order and one in the
 * reverse order (both end at the owner): their receipts, the consumers, and connection events.
 */
export function consumerGroups(
  names: readonly string[],
  urls: readonly string[],
): { receipts: Map<string, Receipt[]>; subs: Subscriber[]; events: string[] } {
  const receipts = new Map(names.map((n) => [n, [] as Receipt[]]));
  const events: string[] = [];
  const subs = names.flatMap((n) => [
    consumer(n, [...urls], receipts.get(n) as Receipt[], events),
    consumer(n, [...urls].reverse(), receipts.get(n) as Receipt[], events),
  ]);
  return { receipts, subs, events };
}

/** Per subscription, how many of `published` its consumers have not received. */
export function missing(
  receipts: ReadonlyMap<string, readonly Receipt[]>,
  published: readonly string[],
): number[] {
  return [...receipts.values()].map((list) => {
    const ids = new Set(list.map((r) => r.decisionId));
    return published.filter((id) => !ids.has(id)).length;
  });
}

export { within };

/**
 * Creates `names` (on `decisions.>`) through instance `a` and waits until the leases spread evenly
 * over `a` and one other instance (half each).
 */
export async function createSpread(pgUrl: string, a: Instance, names: readonly string[]): Promise<void> {
  for (const name of names) {
    const r = await request(a, 'POST', '/v1/subscriptions', { name, topics: ['decisions.>'] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  await within(5000, 'the subscriptions spread over both instances', async () => {
    const o = [...(await leaseOwners(pgUrl)).values()];
    return o.length === names.length && o.filter((u) => u === a.url).length * 2 === names.length;
  });
}
