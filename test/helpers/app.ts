/**
 * An application built in-process on a temporary data directory, for tests that inject requests
 * without sockets (fastify.inject). Each call gets its own directory; close() removes it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';

/** The admin key every test app is started with. */
export const ADMIN_KEY = 'cds_test-admin-key-0123456789abcdefghijklmnop';

/** A test app and helpers around it. */
export interface TestApp {
  readonly app: App;
  readonly dataDir: string;
  /** Sends a request; `key` defaults to the admin key (pass null for none). */
  request(
    method: string,
    url: string,
    opts?: { body?: unknown; key?: string | null; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  /** Closes the app (gracefully) and, unless `keep`, removes the data directory. */
  close(opts?: { keep?: boolean }): Promise<void>;
}

/** Builds a ready app with the given configuration overrides. */
export async function startTestApp(
  overrides: Record<string, unknown> = {},
  dataDir?: string,
): Promise<TestApp> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'cds-app-'));
  const config = loadConfig({
    overrides: {
      dataDir: dir,
      http: { port: 0 },
      grpc: { port: 0 },
      security: { adminKey: ADMIN_KEY },
      ...overrides,
    },
  });
  const app = await buildApp(config, { logger: pino({ level: 'silent' }) });
  await app.http.ready();
  app.ctx.lifecycle.ready = true;
  return {
    app,
    dataDir: dir,
    async request(method, url, opts = {}) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      const key = opts.key === undefined ? ADMIN_KEY : opts.key;
      if (key !== null) headers['authorization'] ??= `Bearer ${key}`;
      let payload: string | undefined;
      if (opts.body !== undefined) {
        payload = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await app.http.inject({
        method: method as 'GET',
        url,
        headers,
        ...(payload === undefined ? {} : { payload }),
      });
      let body: unknown = res.body;
      try {
        body = JSON.parse(res.body);
      } catch {
        /* keep text */
      }
      return { status: res.statusCode, body, headers: res.headers };
    },
    async close(o = {}) {
      await app.close();
      if (!o.keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}
