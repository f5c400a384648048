/**
 * The real service in a child process, for integration, crash and benchmark runs: started on a
 * free port in its own process group, its start line read from stdout, its stderr kept in a file
 * (so a chatty logger can never block it on a full pipe). No child outlives the test process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Decision } from '../../src/domain/decision.ts';

/** The repository root (two levels above this file). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

const START_TIMEOUT_MS = 30_000;
const STDERR_TAIL_BYTES = 8 * 1024;

/** Options of {@link startServer}. */
export interface StartOptions {
  /** Data directory; a fresh temporary one when absent (removed by `cleanup()`). */
  readonly dataDir?: string;
  /** Extra environment (CDS_* variables); the parent's CDS_* variables are never passed on. */
  readonly env?: Readonly<Record<string, string>>;
  /** Arguments after `serve`. */
  readonly args?: readonly string[];
  /** Options of node itself, before the entry file (for example `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
  /** Admin key (>= 24 characters); a random one when absent. */
  readonly adminKey?: string;
  /** Longest wait for the start line, in ms. Default 30,000. */
  readonly timeoutMs?: number;
}

/** How a child ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * Node options the service is started with, as `npm start` and bin/cds.js start it: the young
 * generation at 64 MiB per semi-space (ADR 0020: 15-20% less CPU per decision on the publish path).
 */
export const SERVICE_NODE_ARGS = ['--max-semi-space-size=64'];

/** A running service started by {@link startServer}. */
export interface ServerHandle {
  /** Base URL, for example http://127.0.0.1:40123. */
  readonly url: string;
  readonly pid: number;
  readonly dataDir: string;
  readonly adminKey: string;
  /** The epoch from the start line. */
  readonly epoch: string;
  /** Wall time from spawn to the start line, in ms. */
  readonly startMs: number;
  readonly child: ChildProcess;
  /** File holding the child's stderr (its logs). */
  readonly stderrFile: string;
  /** Sends `signal` (default SIGTERM) to the service and resolves when it has exited. */
  stop(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** SIGKILL to the whole process group; resolves when the child has exited. */
  kill(): Promise<ExitInfo>;
  /** Resolves when the child has exited (at once if it already has). */
  waitExit(): Promise<ExitInfo>;
  /** The last few KB of the child's stderr. */
  stderrTail(bytes?: number): string;
  /** Removes the temporary directories this handle created (the data dir only if it made it). */
  cleanup(): void;
}

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: a SIGKILL to each group is.
  process.on('exit', () => {
    for (const c of live) killGroup(c, 'SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const c of live) killGroup(c, 'SIGKILL');
      process.kill(process.pid, sig);
    });
  }
}

function killGroup(c: ChildProcess, signal: NodeJS.Signals): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, signal);
  } catch {
    try {
      c.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** A new temporary directory, registered for {@link cleanupTempDirs}. */
export function makeTempDir(prefix = 'cds-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Removes every temporary directory made by this module (call it when a test has passed). */
export function cleanupTempDirs(): void {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

function tailOf(file: string, bytes: number): string {
  try {
    const size = statSync(file).size;
    const buf = readFileSync(file);
    return buf.subarray(Math.max(0, size - bytes)).toString('utf8');
  } catch {
    return '';
  }
}

/** Starts the service (`node --import tsx src/main.ts serve`) and waits for its start line. */
export async function startServer(opts: StartOptions = {}): Promise<ServerHandle> {
  installExitHook();
  const ownDataDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? makeTempDir('cds-data-');
  const logDir = makeTempDir('cds-log-');
  const stderrFile = join(logDir, 'stderr.log');
  const adminKey = opts.adminKey ?? `test-admin-${randomBytes(16).toString('hex')}`;

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('CDS_')) env[k] = v;
  }
  Object.assign(
    env,
    { CDS_DATA_DIR: dataDir, CDS_HTTP_PORT: '0', CDS_GRPC_PORT: '0', CDS_ADMIN_KEY: adminKey },
    opts.env ?? {},
  );

  const errFd = openSync(stderrFile, 'a');
  const t0 = performance.now();
  // CDS_TEST_SERVER_ENTRY points the harness at another entry file: for example src/main.ts of a
  // `git archive HEAD` copy (with node_modules linked), so that edits in progress in a shared
  // working tree cannot break a long run half-way.
  const entry = process.env['CDS_TEST_SERVER_ENTRY'] ?? 'src/main.ts';
  const child = spawn(
    process.execPath,
    [...SERVICE_NODE_ARGS, ...(opts.nodeArgs ?? []), '--import', 'tsx', entry, 'serve', ...(opts.args ?? [])],
    {
      cwd: REPO_ROOT,
      env,
      detached: true, // own process group: kill() reaches anything it spawns
      stdio: ['ignore', 'pipe', errFd],
    },
  );
  closeSync(errFd);
  live.add(child);
  const exited = new Promise<ExitInfo>((res) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      res({ code, signal });
    });
  });
  // The test process must not wait for the child to end before it may exit itself.
  child.unref();
  (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();

  const stdoutLines: string[] = [];
  const rl = createInterface({ input: child.stdout! });
  let resolveLine: (v: { http: string; pid: number; epoch: string }) => void = () => {};
  const listening = new Promise<{ http: string; pid: number; epoch: string }>((res) => (resolveLine = res));
  rl.on('line', (line) => {
    if (stdoutLines.length < 100) stdoutLines.push(line);
    try {
      const msg = JSON.parse(line) as { event?: string; http?: string; pid?: number; epoch?: string };
      if (msg.event === 'listening' && typeof msg.http === 'string') {
        resolveLine({ http: msg.http, pid: msg.pid ?? child.pid ?? -1, epoch: String(msg.epoch ?? '') });
      }
    } catch {
      // not the start line
    }
  });

  const timeoutMs = opts.timeoutMs ?? START_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const failure = (why: string) =>
    new Error(
      `cds did not start (${why}); data dir ${dataDir}\n--- stdout ---\n${stdoutLines.join('\n')}\n` +
        `--- stderr tail (${stderrFile}) ---\n${tailOf(stderrFile, STDERR_TAIL_BYTES)}`,
    );
  const started = await Promise.race([
    listening,
    exited.then((e) => Promise.reject(failure(`exited with code ${e.code} signal ${e.signal}`))),
    new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(failure(`no start line within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).catch((err: unknown) => {
    clearTimeout(timer); // or a failed start would hold the test process for the whole timeout
    killGroup(child, 'SIGKILL');
    throw err;
  });
  clearTimeout(timer);
  const startMs = performance.now() - t0;

  // The child is unref'd so that a forgotten handle cannot keep the tests alive; while someone
  // waits for its exit it must count again, or the event loop would end before 'exit' arrives.
  const waitExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.ref();
    return exited;
  };
  const handle: ServerHandle = {
    url: started.http.replace(/\/$/, ''),
    pid: child.pid ?? started.pid,
    dataDir,
    adminKey,
    epoch: started.epoch,
    startMs,
    child,
    stderrFile,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return waitExit();
    },
    kill: async () => {
      killGroup(child, 'SIGKILL');
      return waitExit();
    },
    waitExit,
    stderrTail: (bytes = STDERR_TAIL_BYTES) => tailOf(stderrFile, bytes),
    cleanup: () => {
      rmSync(logDir, { recursive: true, force: true });
      tempDirs.delete(logDir);
      if (ownDataDir) {
        rmSync(dataDir, { recursive: true, force: true });
        tempDirs.delete(dataDir);
      }
    },
  };
  return handle;
}

/** The answer to one HTTP request: status, parsed JSON body (or undefined) and headers. */
export interface JsonResponse<T = unknown> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

/** One publish acknowledgement (DESIGN 5). */
export interface PublishAck {
  readonly decisionId: string;
  readonly revision: number;
  readonly position: string;
  readonly epoch: string;
  readonly topics: string[];
  readonly duplicate: boolean;
}

/** A stored decision with its envelope, as GET /v1/decisions returns it. */
export interface StoredDecision {
  readonly decisionId: string;
  readonly revision: number;
  readonly position: string;
  readonly epoch: string;
  readonly topics: string[];
  readonly key: string;
  readonly receivedAt: string;
  readonly decision: Decision;
}

/** The error body of every failed request. */
export interface ErrorBody {
  readonly error: { code: string; message: string; retriable: boolean; details?: unknown };
}

async function requestJson<T>(url: string, key: string, init: RequestInit = {}): Promise<JsonResponse<T>> {
  const res = await fetch(url, {
    ...init,
    headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string> | undefined) },
  });
  const text = await res.text();
  let body: unknown = undefined;
  if (text !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  return { status: res.status, body: body as T, headers: res.headers };
}

/**
 * Publishes one decision (a single object is sent) or several (sent as one atomic batch array).
 * Never throws for HTTP errors; connection errors are thrown.
 */
export function publish(
  url: string,
  key: string,
  decisions: Decision | readonly Decision[],
): Promise<JsonResponse<PublishAck | { results: PublishAck[] } | ErrorBody>> {
  return requestJson(`${url}/v1/decisions`, key, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(decisions),
  });
}

/** GET /v1/decisions/{id} (optionally one revision). */
export function getDecision(
  url: string,
  key: string,
  decisionId: string,
  revision?: number,
): Promise<JsonResponse<StoredDecision | ErrorBody>> {
  const q = revision === undefined ? '' : `?revision=${revision}`;
  return requestJson(`${url}/v1/decisions/${encodeURIComponent(decisionId)}${q}`, key);
}

/** Every item of GET /v1/decisions with `query`, following nextCursor until it is null. */
export async function queryAll(
  url: string,
  key: string,
  query: Readonly<Record<string, string>> = {},
  pageSize = 1000,
): Promise<StoredDecision[]> {
  const out: StoredDecision[] = [];
  let cursor: string | null = null;
  for (;;) {
    const params = new URLSearchParams({ ...query, limit: String(pageSize) });
    if (cursor !== null) params.set('cursor', cursor);
    const res = await requestJson<{ items: StoredDecision[]; nextCursor: string | null } | ErrorBody>(
      `${url}/v1/decisions?${params.toString()}`,
      key,
    );
    if (res.status === 400 && cursor === null && pageSize > 100) return queryAll(url, key, query, 100);
    if (res.status !== 200 || !('items' in res.body)) {
      throw new Error(`GET /v1/decisions answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
    out.push(...res.body.items);
    cursor = res.body.nextCursor;
    if (cursor === null || res.body.items.length === 0) return out;
  }
}
