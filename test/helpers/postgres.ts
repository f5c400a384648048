/**
 * A real PostgreSQL server for integration tests and benchmarks (STYLE habit 7).
 *
 * - `CDS_TEST_POSTGRES_URL` set: that server is used; every call creates a fresh database on it.
 * - Otherwise, if `initdb` and `pg_ctl` are found: one server per test process, initdb'd in a temporary
 *   directory (trust authentication on 127.0.0.1, plus one password-authenticated role to test wrong
 *   passwords), started on a free 127.0.0.1 port with fsync on; every call creates a fresh database.
 *   As root the server runs as the `postgres` (or `nobody`) account, since PostgreSQL refuses root.
 *   The server stops when the last database is released, when the process exits, and (through a small
 *   watchdog process) even when the test process is killed.
 * - Otherwise `{ skipped }` with the reason, except when `CI` is set: in CI a skip is a failure.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';

/** A database of its own on a running server. */
export interface TestPostgres {
  /** `postgres://` URL of the fresh database (a superuser role, trust authentication). */
  readonly url: string;
  /**
   * The same database through a password-authenticated role, with its correct password; undefined on
   * an external server (`CDS_TEST_POSTGRES_URL`), where the harness does not control authentication.
   */
  readonly passwordUrl?: string;
  /** The server's superuser URL on the `postgres` database (to create or drop databases). */
  readonly adminUrl: string;
  /** Drops the database; stops the server when it was the last one this process started. */
  stop(): Promise<void>;
}

/** Why no server could be had (never returned when `CI` is set: it throws instead). */
export interface SkippedPostgres {
  readonly skipped: string;
}

/** Name and password of the password-authenticated role of a harness-started server. */
export const PASSWORD_ROLE = { user: 'cds_pw', password: 'cds-test-password' } as const;

const SEARCH_DIRS = [
  '/usr/local/bin',
  '/usr/lib/postgresql/15/bin',
  '/usr/lib/postgresql/16/bin',
  '/usr/bin',
];
const START_TIMEOUT_S = 30;

interface Server {
  readonly adminUrl: string;
  /** Whether this process started it (and so stops it). */
  readonly owned: boolean;
  readonly passwordBase?: string;
  stop(): void;
  /** pg_ctl stop -m fast, keeping the data directory (servers this process started). */
  down?(): Promise<void>;
  /** pg_ctl start again, on the same port and data directory. */
  up?(): Promise<void>;
}

/** A database on a server of its own, which a test may stop and start again (an outage). */
export interface PrivatePostgres extends TestPostgres {
  /** Stops the server (`pg_ctl stop -m fast`: connections are closed); its data stay. */
  down(): Promise<void>;
  /** Starts it again on the same port and data directory; resolves when it accepts connections. */
  up(): Promise<void>;
  /** down(), then up() after `downMs`. */
  restart(downMs?: number): Promise<void>;
}

let server: Promise<Server> | undefined;
let users = 0;

/** A fresh database on the process's test server (started on first use), or why there is none. */
export async function startPostgres(): Promise<TestPostgres | SkippedPostgres> {
  const external = process.env.CDS_TEST_POSTGRES_URL;
  let srv: Server;
  if (external !== undefined && external !== '') {
    srv = { adminUrl: external, owned: false, stop: () => {} };
  } else {
    const bins = findBinaries();
    if (typeof bins === 'string') {
      if (process.env.CI !== undefined && process.env.CI !== '')
        throw new Error(`PostgreSQL is required in CI but ${bins}`);
      return { skipped: bins };
    }
    server ??= startServer(bins).catch((e: unknown) => {
      server = undefined;
      throw e;
    });
    srv = await server;
  }
  users++;
  const db = `cds_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin(srv.adminUrl, `CREATE DATABASE ${db}`);
  let stopped = false;
  return {
    url: withDatabase(srv.adminUrl, db),
    adminUrl: srv.adminUrl,
    ...(srv.passwordBase === undefined ? {} : { passwordUrl: withDatabase(srv.passwordBase, db) }),
    async stop() {
      if (stopped) return;
      stopped = true;
      users--;
      await admin(srv.adminUrl, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
      if (users === 0 && srv.owned) {
        server = undefined;
        srv.stop();
      }
    },
  };
}

/**
 * A fresh database on a server started for the caller alone (not the process's shared one), so that
 * it can be stopped and started again; stop() stops that server. Skipped on an external server
 * (`CDS_TEST_POSTGRES_URL`), which the harness cannot stop.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres | SkippedPostgres> {
  const external = process.env.CDS_TEST_POSTGRES_URL;
  if (external !== undefined && external !== '')
    return { skipped: 'a private server is needed to stop and restart it, and CDS_TEST_POSTGRES_URL is set' };
  const bins = findBinaries();
  if (typeof bins === 'string') {
    if (process.env.CI !== undefined && process.env.CI !== '')
      throw new Error(`PostgreSQL is required in CI but ${bins}`);
    return { skipped: bins };
  }
  const srv = await startServer(bins);
  const db = `cds_private_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin(srv.adminUrl, `CREATE DATABASE ${db}`);
  const down = srv.down as () => Promise<void>;
  const up = srv.up as () => Promise<void>;
  return {
    url: withDatabase(srv.adminUrl, db),
    adminUrl: srv.adminUrl,
    ...(srv.passwordBase === undefined ? {} : { passwordUrl: withDatabase(srv.passwordBase, db) }),
    down,
    up,
    async restart(downMs = 0) {
      await down();
      await new Promise((r) => setTimeout(r, downMs));
      await up();
    },
    async stop() {
      srv.stop();
    },
  };
}

/** Runs one statement as the server's superuser. */
async function admin(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

interface Binaries {
  readonly initdb: string;
  readonly pgCtl: string;
  /** The account to run them as (root cannot), or undefined to run as ourselves. */
  readonly runAs?: { name: string; uid: number; gid: number };
}

/** The server binaries and the account to run them as, or why they cannot be used. */
function findBinaries(): Binaries | string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SEARCH_DIRS].filter((d) => d !== '');
  const find = (name: string): string | undefined =>
    dirs.map((d) => join(d, name)).find((p) => existsSync(p));
  const initdb = find('initdb');
  const pgCtl = find('pg_ctl');
  if (initdb === undefined || pgCtl === undefined)
    return `initdb/pg_ctl not found (searched PATH and ${SEARCH_DIRS.join(', ')}); set CDS_TEST_POSTGRES_URL to use a running server`;
  if (process.getuid?.() !== 0) return { initdb, pgCtl };
  for (const name of ['postgres', 'nobody']) {
    const uid = idOf(name, '-u');
    const gid = idOf(name, '-g');
    if (uid !== undefined && gid !== undefined && uid !== 0)
      return { initdb, pgCtl, runAs: { name, uid, gid } };
  }
  return 'running as root and neither a postgres nor a nobody account exists to run PostgreSQL as';
}

function idOf(name: string, flag: '-u' | '-g'): number | undefined {
  try {
    return Number(
      execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(),
    );
  } catch {
    return undefined;
  }
}

/** `run` without blocking the event loop (so that a test's load goes on while the server stops). */
function runAsync(bins: Binaries, cmd: string, args: string[]): Promise<void> {
  const [file, argv] =
    bins.runAs === undefined ? [cmd, args] : ['runuser', ['-u', bins.runAs.name, '--', cmd, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: tmpdir() });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${out}`)),
    );
  });
}

/** Runs a server binary, as the unprivileged account when we are root; throws with its output on failure. */
function run(bins: Binaries, cmd: string, args: string[]): void {
  const [file, argv] =
    bins.runAs === undefined ? [cmd, args] : ['runuser', ['-u', bins.runAs.name, '--', cmd, ...args]];
  const r = spawnSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: tmpdir() });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
}

async function startServer(bins: Binaries): Promise<Server> {
  // As root, under /tmp: a private TMPDIR (say /root/tmp) would not be reachable by the server's account.
  const dir = mkdtempSync(join(bins.runAs === undefined ? tmpdir() : '/tmp', 'cds-pg-'));
  const data = join(dir, 'data');
  if (bins.runAs !== undefined) chownSync(dir, bins.runAs.uid, bins.runAs.gid);
  const cleanupDir = () => rmSync(dir, { recursive: true, force: true });
  try {
    // -N: the cluster files need no fsync (they are thrown away); the server itself runs with fsync on.
    run(bins, bins.initdb, ['-D', data, '-U', 'cds', '--auth=trust', '--locale=C', '--encoding=UTF8', '-N']);
    writeFileSync(
      join(data, 'pg_hba.conf'),
      [
        `host all ${PASSWORD_ROLE.user} 127.0.0.1/32 scram-sha-256`,
        'host all all 127.0.0.1/32 trust',
        'local all all trust',
        '',
      ].join('\n'),
    );
  } catch (e) {
    cleanupDir();
    throw e;
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const opts = [
      `-c listen_addresses=127.0.0.1`,
      `-c port=${port}`,
      `-c unix_socket_directories=${dir}`,
      `-c fsync=on`,
      `-c max_connections=200`,
    ].join(' ');
    try {
      run(bins, bins.pgCtl, [
        'start',
        '-D',
        data,
        '-w',
        '-t',
        String(START_TIMEOUT_S),
        '-l',
        join(dir, 'server.log'),
        '-o',
        opts,
      ]);
    } catch (e) {
      lastError = new Error(`${(e as Error).message}\n${tail(join(dir, 'server.log'))}`);
      continue; // most likely the port was taken between freePort() and the start
    }
    const stop = once(() => {
      spawnSync(
        bins.runAs === undefined ? bins.pgCtl : 'runuser',
        bins.runAs === undefined
          ? ['stop', '-D', data, '-m', 'fast', '-w']
          : ['-u', bins.runAs.name, '--', bins.pgCtl, 'stop', '-D', data, '-m', 'fast', '-w'],
        { stdio: 'ignore' },
      );
      cleanupDir();
    });
    process.once('exit', stop);
    startWatchdog(data, dir);
    const adminUrl = `postgres://cds@127.0.0.1:${port}/postgres`;
    await admin(
      adminUrl,
      `CREATE ROLE ${PASSWORD_ROLE.user} LOGIN SUPERUSER PASSWORD '${PASSWORD_ROLE.password}'`,
    );
    const startArgs = [
      'start',
      '-D',
      data,
      '-w',
      '-t',
      String(START_TIMEOUT_S),
      '-l',
      join(dir, 'server.log'),
      '-o',
      opts,
    ];
    return {
      adminUrl,
      owned: true,
      down: () => runAsync(bins, bins.pgCtl, ['stop', '-D', data, '-m', 'fast', '-w']),
      up: () => runAsync(bins, bins.pgCtl, startArgs),
      passwordBase: `postgres://${PASSWORD_ROLE.user}:${PASSWORD_ROLE.password}@127.0.0.1:${port}/postgres`,
      stop: () => {
        process.removeListener('exit', stop);
        stop();
      },
    };
  }
  cleanupDir();
  throw lastError;
}

/**
 * A detached shell that stops the server once this process is gone, however it ended (kill -9
 * included): the postmaster is a daemon and would otherwise outlive us. SIGQUIT is an immediate stop.
 */
function startWatchdog(data: string, dir: string): void {
  const pidFile = join(data, 'postmaster.pid');
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done
if [ -f '${pidFile}' ]; then kill -QUIT "$(head -1 '${pidFile}')" 2>/dev/null; sleep 1; fi
rm -rf '${dir}'`;
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  child.unref();
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-2000);
  } catch {
    return '';
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}
