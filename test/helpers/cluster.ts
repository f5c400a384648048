/**
 * Cluster-mode instances in one process (ADR 0015): apps on one PostgreSQL database sharing one
 * SegmentLog, which stands in for the shared Pulsar log, each listening on free ports.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { SegmentLog } from '../../src/adapters/embedded/log/index.ts';
import { buildApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import type { EventLog } from '../../src/log/index.ts';

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
