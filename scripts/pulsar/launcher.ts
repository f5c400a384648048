// Obtains and runs a real Apache Pulsar standalone broker without Docker, for tests, CI and local use.
// The broker's jars come from Maven Central into the local Maven repository; the broker runs as a
// JVM in its own process group with a fresh temporary data directory and free loopback ports.
// Why this way, and what was measured: docs/adr/0005-pulsar-broker-in-tests.md.
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Pulsar version taken from the server distribution (the newest 4.0.x LTS that Maven Central serves whole). */
export const PULSAR_DISTRIBUTION_VERSION = '4.0.8';
/** Pulsar version resolved through pom.xml when the distribution is not available (4.0.8's jetcd-core-shaded is not served). */
export const PULSAR_POM_VERSION = '4.0.7';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const DIST_ARTIFACT = `org.apache.pulsar:pulsar-server-distribution:${PULSAR_DISTRIBUTION_VERSION}:tar.gz:bin`;
const MVN_TIMEOUT_MS = 20 * 60_000;
const STOP_GRACE_MS = 20_000;

/** Where the broker's classpath came from. */
export interface ResolvedPulsar {
  version: string;
  source: 'distribution' | 'maven-pom';
  /** A JVM classpath (`dir/*` or a path list). */
  classpath: string;
  /** Whether Maven had to run (false: everything was cached). */
  resolvedNow: boolean;
  resolveMs: number;
}

/** Java or Maven is missing, or the broker could not be resolved: callers outside CI may skip. */
export class PulsarUnavailableError extends Error {
  override readonly name = 'PulsarUnavailableError';
}

/** The broker started but did not become ready, or died. */
export class PulsarStartError extends Error {
  override readonly name = 'PulsarStartError';
}

/** Options of {@link resolvePulsar}. */
export interface ResolveOptions {
  /** Progress messages (default: none). */
  log?: (message: string) => void;
  /** `distribution` (default, falls back to `maven-pom`) or `maven-pom` only; env PULSAR_TEST_SOURCE. */
  source?: 'distribution' | 'maven-pom';
}

/** Options of {@link launchPulsar}. */
export interface LaunchOptions extends ResolveOptions {
  /** Give up waiting for readiness after this long (default 180 s). */
  startTimeoutMs?: number;
  /** fsync the bookie journal (default false: fast, not crash-durable). */
  journalSyncData?: boolean;
  /** Extra or overriding broker configuration keys. */
  config?: Record<string, string | number | boolean>;
  /** JVM heap flags (default `-Xms256m -Xmx1g -XX:MaxDirectMemorySize=1g`). */
  memory?: string[];
  /** Keep the data directory after stop (default false). */
  keepData?: boolean;
  /** Start on this existing data directory and these ports (a restart; see {@link restartPulsar}). */
  reuse?: { dataDir: string; webPort: number; brokerPort: number };
}

/** Options of {@link PulsarBroker.stop}. */
export interface StopOptions {
  /** Leave the data directory (default: the launch option keepData). */
  keepData?: boolean;
  /** SIGKILL at once, as a crash would (default: SIGTERM, then SIGKILL after 20 s). */
  kill?: boolean;
}

/** A running standalone broker. */
export interface PulsarBroker {
  webServiceUrl: string;
  brokerServiceUrl: string;
  /** JVM pid, also its process group id. */
  pid: number;
  dataDir: string;
  logFile: string;
  version: string;
  /** From spawn to the first answer of GET /admin/v2/clusters. */
  startMs: number;
  resolve: ResolvedPulsar;
  /** Resolves when the JVM exits, with its exit code or signal. */
  exited: Promise<string>;
  webPort: number;
  brokerPort: number;
  /** SIGTERM the process group, SIGKILL after 20 s, then remove the data directory. */
  stop(opts?: StopOptions): Promise<void>;
}

function cacheRoot(): string {
  return process.env.PULSAR_TEST_CACHE ?? join(homedir(), '.cache', 'cds-pulsar');
}

function m2Repository(): string {
  return process.env.PULSAR_TEST_M2_REPO ?? join(homedir(), '.m2', 'repository');
}

function commandWorks(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

async function runMaven(args: string[]): Promise<void> {
  const full = [
    '-B',
    '-q',
    '-s',
    join(HERE, 'settings.xml'),
    `-Dmaven.repo.local=${m2Repository()}`,
    ...args,
  ];
  await new Promise<void>((resolve, reject) => {
    const child = spawn('mvn', full, { cwd: HERE, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (b: Buffer): void => {
      out = (out + b.toString()).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), MVN_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`mvn ${args.join(' ')} failed (${code ?? signal}):\n${out.trim()}`));
    });
  });
}

async function resolveDistribution(log: (m: string) => void): Promise<Omit<ResolvedPulsar, 'resolveMs'>> {
  const home = join(cacheRoot(), `apache-pulsar-${PULSAR_DISTRIBUTION_VERSION}`);
  const lib = join(home, 'lib');
  const resolved = {
    version: PULSAR_DISTRIBUTION_VERSION,
    source: 'distribution' as const,
    classpath: join(lib, '*'),
  };
  if (existsSync(join(home, '.complete'))) return { ...resolved, resolvedNow: false };

  const tarball = join(
    m2Repository(),
    'org/apache/pulsar/pulsar-server-distribution',
    PULSAR_DISTRIBUTION_VERSION,
    `pulsar-server-distribution-${PULSAR_DISTRIBUTION_VERSION}-bin.tar.gz`,
  );
  if (!existsSync(tarball)) {
    if (!commandWorks('mvn', ['-v'])) throw new PulsarUnavailableError('mvn is not installed');
    log(`resolving ${DIST_ARTIFACT} with Maven (about 245 MB, once)`);
    await runMaven(['dependency:get', `-Dartifact=${DIST_ARTIFACT}`, '-Dtransitive=false']);
  }
  // Extract only lib/ beside the final place, then rename: concurrent resolvers never see half a tree.
  mkdirSync(cacheRoot(), { recursive: true });
  const staging = mkdtempSync(join(cacheRoot(), '.extract-'));
  try {
    const tar = spawnSync(
      'tar',
      ['xzf', tarball, '-C', staging, `apache-pulsar-${PULSAR_DISTRIBUTION_VERSION}/lib`],
      {
        encoding: 'utf8',
      },
    );
    if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr || tar.error?.message}`);
    const extracted = join(staging, `apache-pulsar-${PULSAR_DISTRIBUTION_VERSION}`);
    writeFileSync(join(extracted, '.complete'), `${new Date().toISOString()}\n`);
    rmSync(home, { recursive: true, force: true });
    try {
      renameSync(extracted, home);
    } catch (err) {
      if (!existsSync(join(home, '.complete'))) throw err;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return { ...resolved, resolvedNow: true };
}

async function resolvePom(log: (m: string) => void): Promise<Omit<ResolvedPulsar, 'resolveMs'>> {
  const file = join(cacheRoot(), `pom-${PULSAR_POM_VERSION}.classpath`);
  const resolved = { version: PULSAR_POM_VERSION, source: 'maven-pom' as const };
  if (existsSync(file)) {
    const classpath = readFileSync(file, 'utf8').trim();
    if (classpath.split(':').every((jar) => existsSync(jar)))
      return { ...resolved, classpath, resolvedNow: false };
  }
  if (!commandWorks('mvn', ['-v'])) throw new PulsarUnavailableError('mvn is not installed');
  log(`resolving org.apache.pulsar:pulsar-broker:${PULSAR_POM_VERSION} with Maven (scripts/pulsar/pom.xml)`);
  mkdirSync(cacheRoot(), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await runMaven(['-f', join(HERE, 'pom.xml'), 'dependency:build-classpath', `-Dmdep.outputFile=${tmp}`]);
  renameSync(tmp, file);
  return { ...resolved, classpath: readFileSync(file, 'utf8').trim(), resolvedNow: true };
}

/**
 * Makes the broker's jars available locally and returns its classpath. Maven runs only when the
 * cache (env PULSAR_TEST_CACHE, default ~/.cache/cds-pulsar) and ~/.m2 lack them.
 * @throws PulsarUnavailableError when Java or Maven is missing or resolution fails.
 */
export async function resolvePulsar(opts: ResolveOptions = {}): Promise<ResolvedPulsar> {
  const log = opts.log ?? ((): void => {});
  const started = performance.now();
  if (!commandWorks('java', ['-version'])) throw new PulsarUnavailableError('java is not installed');
  const wanted =
    opts.source ?? (process.env.PULSAR_TEST_SOURCE as ResolveOptions['source']) ?? 'distribution';
  const attempts = wanted === 'maven-pom' ? [resolvePom] : [resolveDistribution, resolvePom];
  const failures: string[] = [];
  for (const attempt of attempts) {
    try {
      const r = await attempt(log);
      return { ...r, resolveMs: Math.round(performance.now() - started) };
    } catch (err) {
      if (err instanceof PulsarUnavailableError) throw err;
      failures.push(err instanceof Error ? err.message : String(err));
      log(`resolution failed: ${failures.at(-1)?.split('\n')[0]}`);
    }
  }
  throw new PulsarUnavailableError(`could not resolve the Pulsar broker:\n${failures.join('\n---\n')}`);
}

/** A port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Renders the broker configuration: the template's keys, overridden or extended by `overrides`. */
export function renderConfig(template: string, overrides: Record<string, string>): string {
  const left = new Map(Object.entries(overrides));
  const lines = template.split('\n').map((line) => {
    const m = /^\s*([A-Za-z0-9_.]+)\s*=/.exec(line);
    const key = m?.[1];
    if (key === undefined || !left.has(key)) return line;
    const value = left.get(key);
    left.delete(key);
    return `${key}=${value}`;
  });
  for (const [key, value] of left) lines.push(`${key}=${value}`);
  return lines.join('\n');
}

/** JVM flags taken from Pulsar's bin/pulsar (4.0.x) that the standalone broker needs on Java 17. */
export const JVM_FLAGS: readonly string[] = [
  '-XX:+PerfDisableSharedMem',
  '-Djava.net.preferIPv4Stack=true',
  '--add-opens=java.base/java.io=ALL-UNNAMED',
  '--add-opens=java.base/java.util.zip=ALL-UNNAMED',
  '--add-opens=java.base/java.nio=ALL-UNNAMED',
  '--add-opens=java.base/jdk.internal.misc=ALL-UNNAMED',
  '--add-opens=java.base/jdk.internal.platform=ALL-UNNAMED',
  '--add-opens=java.base/sun.net=ALL-UNNAMED',
  '--add-opens=java.management/sun.management=ALL-UNNAMED',
  '--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED',
  '-Dio.netty.tryReflectionSetAccessible=true',
  '-Dorg.apache.pulsar.shade.io.netty.tryReflectionSetAccessible=true',
  '-Dio.netty.recycler.maxCapacityPerThread=4096',
  '-Dpulsar.allocator.exit_on_oom=true',
  '-Dbookkeeper.metadata.bookie.drivers=org.apache.pulsar.metadata.bookkeeper.PulsarMetadataBookieDriver',
  '-Dbookkeeper.metadata.client.drivers=org.apache.pulsar.metadata.bookkeeper.PulsarMetadataClientDriver',
  '-Dlog4j.shutdownHookEnabled=false',
  '-Dlog4j2.is.webapp=false',
];

/** Default heap and direct memory of the test broker. */
export const DEFAULT_MEMORY: readonly string[] = ['-Xms256m', '-Xmx1g', '-XX:MaxDirectMemorySize=1g'];

/** The last `lines` lines of a file, or a note that it is missing. */
export function tailFile(file: string, lines = 60): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return `(no ${file})`;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

// Runs detached beside the JVM: when the process that started the broker disappears (even by
// SIGKILL), it stops the JVM's process group and removes the data directory.
const WATCHDOG = `
const fs = require('node:fs');
const [parent, jvm, dir] = process.argv.slice(1).map((a, i) => (i < 2 ? Number(a) : a));
const alive = (p) => {
  try { process.kill(p, 0); } catch { return false; }
  try { return !/^\\d+ \\(.*\\) Z/.test(fs.readFileSync('/proc/' + p + '/stat', 'utf8')); } catch { return true; }
};
const cleanUp = () => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); };
const timer = setInterval(() => {
  if (alive(parent)) {
    if (!alive(jvm)) clearInterval(timer); // stopped by its owner, who removes the directory
    return;
  }
  clearInterval(timer);
  if (!alive(jvm)) return cleanUp();
  try { process.kill(-jvm, 'SIGTERM'); } catch {}
  const deadline = Date.now() + ${STOP_GRACE_MS};
  const wait = setInterval(() => {
    if (alive(jvm) && Date.now() < deadline) return;
    clearInterval(wait);
    try { process.kill(-jvm, 'SIGKILL'); } catch {}
    setTimeout(cleanUp, 500);
  }, 250);
}, 1000);
`;

async function waitReady(
  webServiceUrl: string,
  exited: { value?: string },
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited.value !== undefined)
      throw new PulsarStartError(`the broker exited during start (${exited.value})`);
    try {
      const res = await fetch(`${webServiceUrl}/admin/v2/clusters`, { signal: AbortSignal.timeout(2000) });
      if (res.ok && ((await res.json()) as unknown[]).includes('standalone')) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new PulsarStartError(`the broker was not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function launchOnce(resolved: ResolvedPulsar, opts: LaunchOptions): Promise<PulsarBroker> {
  const dataDir = opts.reuse?.dataDir ?? mkdtempSync(join(tmpdir(), 'cds-pulsar-'));
  const logFile = join(dataDir, 'broker.log');
  const outFile = join(dataDir, 'stdout.log');
  const webPort = opts.reuse?.webPort ?? (await freePort());
  const brokerPort = opts.reuse?.brokerPort ?? (await freePort());
  const overrides: Record<string, string> = {
    webServicePort: String(webPort),
    brokerServicePort: String(brokerPort),
    journalSyncData: String(opts.journalSyncData ?? false),
    narExtractionDirectory: join(dataDir, 'nar'),
  };
  for (const [k, v] of Object.entries(opts.config ?? {})) overrides[k] = String(v);
  const confFile = join(dataDir, 'standalone.conf');
  writeFileSync(confFile, renderConfig(readFileSync(join(HERE, 'standalone.conf'), 'utf8'), overrides));

  const args = [
    ...(opts.memory ?? DEFAULT_MEMORY),
    ...JVM_FLAGS,
    `-Dlog4j.configurationFile=${join(HERE, 'log4j2.xml')}`,
    `-Dpulsar.log.file=${logFile}`,
    '-cp',
    resolved.classpath,
    'org.apache.pulsar.PulsarStandaloneStarter',
    '--config',
    confFile,
    '--no-functions-worker',
    '--no-stream-storage',
    '-a',
    '127.0.0.1',
    '--metadata-dir',
    join(dataDir, 'metadata'),
    '--bookkeeper-dir',
    join(dataDir, 'bookkeeper'),
  ];
  const out = openSync(outFile, 'a');
  const started = performance.now();
  const child = spawn('java', args, { cwd: dataDir, detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new PulsarStartError('java could not be started');
  const exitState: { value?: string } = {};
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      exitState.value = String(code ?? signal);
      resolve(exitState.value);
    });
  });
  const onExit = (): void => {
    killGroup(pid, 'SIGTERM');
    // A JVM that already died leaves its directory to us; a live one leaves it to the watchdog.
    if (exitState.value !== undefined && !opts.keepData) rmSync(dataDir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  spawn(process.execPath, ['-e', WATCHDOG, String(process.pid), String(pid), opts.keepData ? '' : dataDir], {
    detached: true,
    stdio: 'ignore',
  }).unref();

  let stopping: Promise<void> | undefined;
  const stop = (how: StopOptions = {}): Promise<void> =>
    (stopping ??= (async () => {
      process.removeListener('exit', onExit);
      killGroup(pid, how.kill ? 'SIGKILL' : 'SIGTERM');
      const deadline = Date.now() + STOP_GRACE_MS;
      while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      killGroup(pid, 'SIGKILL');
      if (exitState.value === undefined)
        await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      if (!(how.keepData ?? opts.keepData)) rmSync(dataDir, { recursive: true, force: true });
    })());

  const webServiceUrl = `http://127.0.0.1:${webPort}`;
  try {
    await waitReady(webServiceUrl, exitState, opts.startTimeoutMs ?? 180_000);
  } catch (err) {
    const detail = `${(err as Error).message}\n--- ${logFile} (tail) ---\n${tailFile(logFile)}\n--- ${outFile} (tail) ---\n${tailFile(outFile, 20)}`;
    await stop();
    throw new PulsarStartError(detail, { cause: err });
  }
  return {
    webServiceUrl,
    brokerServiceUrl: `pulsar://127.0.0.1:${brokerPort}`,
    webPort,
    brokerPort,
    pid,
    dataDir,
    logFile,
    version: resolved.version,
    startMs: Math.round(performance.now() - started),
    resolve: resolved,
    exited,
    stop,
  };
}

/**
 * Resolves (if needed) and starts a standalone broker on free 127.0.0.1 ports in a fresh temporary
 * directory; resolves once GET /admin/v2/clusters answers. A start that loses a port race is retried.
 * @throws PulsarUnavailableError (resolution) or PulsarStartError (start, with the broker log tail).
 */
export async function launchPulsar(opts: LaunchOptions = {}): Promise<PulsarBroker> {
  const resolved = await resolvePulsar(opts);
  for (let attempt = 1; ; attempt++) {
    try {
      return await launchOnce(resolved, opts);
    } catch (err) {
      const portRace = err instanceof Error && /BindException|Address already in use/.test(err.message);
      if (!portRace || attempt >= 3) throw err;
      opts.log?.(`port taken during start, retrying (attempt ${attempt + 1})`);
    }
  }
}

/**
 * Stops a broker (SIGTERM, or SIGKILL with `kill`) keeping its data directory, and starts it again on
 * the same directory and ports, so that clients reconnect to the same URLs and find their data.
 */
export async function restartPulsar(
  broker: PulsarBroker,
  opts: LaunchOptions & { kill?: boolean } = {},
): Promise<PulsarBroker> {
  await broker.stop({ keepData: true, kill: opts.kill ?? false });
  const { kill: _kill, ...launch } = opts;
  return await launchPulsar({
    ...launch,
    reuse: { dataDir: broker.dataDir, webPort: broker.webPort, brokerPort: broker.brokerPort },
  });
}
