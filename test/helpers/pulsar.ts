// A real Apache Pulsar standalone broker for integration tests, one per test process.
// Outside CI a machine without Java or Maven (or without the broker's jars) skips Pulsar tests
// with a reason; in CI (env CI set) that is an error, since a skipped test there hides a gap.
// PULSAR_TEST_WEB_SERVICE_URL and PULSAR_TEST_BROKER_SERVICE_URL point tests at a running broker instead.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import {
  JVM_FLAGS,
  launchPulsar,
  PulsarUnavailableError,
  resolvePulsar,
} from '../../scripts/pulsar/launcher.ts';
import type { LaunchOptions, PulsarBroker } from '../../scripts/pulsar/launcher.ts';

/** Options of {@link startPulsar}; only the first call in a process starts the broker with them. */
export type StartPulsarOptions = Omit<LaunchOptions, 'log' | 'keepData'>;

/** A broker the tests may use. `stop()` releases it; the shared broker itself stops at process exit. */
export interface TestPulsar {
  webServiceUrl: string;
  brokerServiceUrl: string;
  /** Time this process waited for the broker to start (0 when it was already running). */
  startMs: number;
  /** The broker's log file, for diagnostics (undefined for an external broker). */
  logFile?: string;
  stop(): Promise<void>;
}

/** The broker could not be had outside CI; the test should call `t.skip(skipped)`. */
export interface SkippedPulsar {
  skipped: string;
}

let shared: { opts: StartPulsarOptions; broker: Promise<PulsarBroker> } | undefined;

/**
 * Returns the process's shared broker, starting it on first use (free ports on 127.0.0.1,
 * fresh data directory, killed with its process group when this process exits).
 * @throws when the broker cannot be had and env CI is set, or when it fails to start.
 */
export async function startPulsar(opts: StartPulsarOptions = {}): Promise<TestPulsar | SkippedPulsar> {
  const webServiceUrl = process.env.PULSAR_TEST_WEB_SERVICE_URL;
  const brokerServiceUrl = process.env.PULSAR_TEST_BROKER_SERVICE_URL;
  if (webServiceUrl && brokerServiceUrl) {
    return { webServiceUrl, brokerServiceUrl, startMs: 0, stop: async () => {} };
  }
  if (shared && !isDeepStrictEqual(shared.opts, opts)) {
    throw new Error(
      'startPulsar: the shared broker was started with other options; use launchPulsar() for a separate one',
    );
  }
  const first = shared === undefined;
  const started = performance.now();
  shared ??= {
    opts,
    broker: launchPulsar({ ...opts, log: (m) => console.error(`[pulsar] ${m}`) }),
  };
  let broker: PulsarBroker;
  try {
    broker = await shared.broker;
  } catch (err) {
    shared = undefined;
    if (err instanceof PulsarUnavailableError && !process.env.CI)
      return { skipped: `Pulsar unavailable: ${err.message}` };
    throw err;
  }
  const waited = first ? broker.startMs : Math.round(performance.now() - started);
  return {
    webServiceUrl: broker.webServiceUrl,
    brokerServiceUrl: broker.brokerServiceUrl,
    startMs: waited,
    logFile: broker.logFile,
    stop: async () => {},
  };
}

/** Type guard: the broker was skipped. */
export function isSkipped(p: TestPulsar | SkippedPulsar): p is SkippedPulsar {
  return 'skipped' in p;
}

/**
 * Runs one of Pulsar's own Java tools (pulsar-client-tools' `PulsarClientTool`, pulsar-testclient's
 * `PulsarPerfTestTool`, ...) from the jars resolved from Maven Central for the broker (the server
 * distribution's lib/ holds them), against the given broker. Resolves with its stdout, stderr and log file.
 */
export async function runPulsarTool(
  broker: { webServiceUrl: string; brokerServiceUrl: string },
  mainClass: string,
  args: string[],
  opts: { timeoutMs?: number; withConfig?: boolean; memory?: string[] } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; log: string }> {
  const resolved = await resolvePulsar();
  const dir = mkdtempSync(join(tmpdir(), 'cds-pulsar-tool-'));
  const conf = join(dir, 'client.conf');
  writeFileSync(
    conf,
    `webServiceUrl=${broker.webServiceUrl}/\nbrokerServiceUrl=${broker.brokerServiceUrl}/\n`,
  );
  const full = [
    ...(opts.memory ?? ['-Xms64m', '-Xmx512m']),
    ...JVM_FLAGS,
    `-Dlog4j.configurationFile=${fileURLToPath(new URL('../../scripts/pulsar/log4j2.xml', import.meta.url))}`,
    `-Dpulsar.log.file=${join(dir, 'tool.log')}`,
    '-cp',
    resolved.classpath,
    mainClass,
    ...(opts.withConfig === false ? [] : [conf]),
    ...args,
  ];
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn('java', full, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        let log = '';
        try {
          log = readFileSync(join(dir, 'tool.log'), 'utf8');
        } catch {
          // the tool logged nothing
        }
        resolve({ code, stdout, stderr, log });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
