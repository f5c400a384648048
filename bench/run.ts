/**
 * The benchmark harness: `npm run bench -- <workload> [options]` (see bench/lib/args.ts).
 *
 * It starts the service in a child process on a temporary data directory (unless --url is given),
 * runs the workload's open-loop load generator(s) and subscriber processes, samples every
 * process's CPU and memory from /proc over the measured period, writes
 * bench/results/<workload>-<timestamp>.json with a latency plot (.svg) next to it and prints a
 * table. Sequence workloads (latency, subscribers) make one run per step on a fresh service, each
 * with its own result and plot, and a summary file listing them. With --find-max it raises the rate
 * until a run is not sustained and bisects towards the highest rate that holds.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { REPO_ROOT, startServer, type ServerHandle } from '../test/helpers/server.ts';
import { parseArgs, USAGE, type CliArgs } from './lib/args.ts';
import { summarizeProfiles } from './lib/cpuprofile.ts';
import { gitCommit, machineInfo } from './lib/machine.ts';
import { ProcessMeter, type CpuUse } from './lib/proc.ts';
import {
  formatSequence,
  formatTable,
  isSustained,
  stepSummary,
  SUSTAINED_RULE,
  writeResult,
  type BenchResult,
} from './lib/result.ts';
import { runSvg, sequenceSvg } from './lib/svg.ts';
import type { BenchOptions, Workload } from './lib/workload.ts';
import { cluster } from './workloads/cluster.ts';
import { fanout } from './workloads/fanout.ts';
import { ingest } from './workloads/ingest.ts';
import { latency } from './workloads/latency.ts';
import { replay } from './workloads/replay.ts';
import { subscribers } from './workloads/subscribers.ts';

const WORKLOADS: Readonly<Record<string, Workload>> = {
  ingest,
  fanout,
  subscribers,
  latency,
  replay,
  cluster,
};

/** The service's own limits must not be what a benchmark measures. */
const SERVICE_ENV = { CDS_RATE_REQUESTS_PER_SECOND: '1000000', CDS_RATE_DECISIONS_PER_SECOND: '1000000000' };

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** `x.json` -> `x-cpuprofile` (a directory). */
const profileDirOf = (jsonFile: string) => `${jsonFile.replace(/\.json$/, '')}-cpuprofile`;

/**
 * CPU microseconds per decision (and per delivery) of each process, from its share of one core over
 * the measured period; `subscribers` sums the subscriber processes.
 */
function costPerItem(
  cpu: Readonly<Record<string, CpuUse | null>>,
  decisionsPerS: number,
  deliveriesPerS: number | null,
): BenchResult['cpuUs'] {
  const per = (rate: number) => {
    const out: Record<string, number> = {};
    let subs = 0;
    for (const [name, c] of Object.entries(cpu)) {
      if (c === null || rate <= 0) continue;
      const us = (c.pctOfOneCore / 100 / rate) * 1e6;
      out[name] = Math.round(us * 10) / 10;
      if (name.startsWith('subscribers-')) subs += us;
    }
    if (subs > 0) out['subscribers'] = Math.round(subs * 10) / 10;
    return out;
  };
  return {
    perDecision: per(decisionsPerS),
    perDelivery: deliveriesPerS === null || deliveriesPerS <= 0 ? null : per(deliveriesPerS),
  };
}

/** `x.json` -> `x.svg`. */
const plotFileOf = (jsonFile: string) => `${jsonFile.replace(/\.json$/, '')}.svg`;

/** One run at `opts`: start the service, run the workload, stop the service; returns the result. */
async function runOnce(
  workload: Workload,
  opts: BenchOptions,
  args: CliArgs,
  out: string,
): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  let server: ServerHandle | undefined;
  let grpcAddress = args.grpc;
  const env: Record<string, string> = { ...SERVICE_ENV, ...args.env };
  // Only the service the harness starts itself is profiled (not a --url one, nor a cluster's).
  const profileDir =
    args.cpuProfile && args.url === undefined && workload.startsServices !== true
      ? profileDirOf(out)
      : undefined;
  if (profileDir !== undefined) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
  }
  if (args.url === undefined && workload.startsServices !== true) {
    const port = env['CDS_GRPC_PORT'] ?? String(await freePort());
    env['CDS_GRPC_PORT'] = port;
    grpcAddress = `127.0.0.1:${port}`;
    server = await startServer({
      env,
      ...(profileDir === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] }),
    });
  }
  const url = args.url ?? server?.url ?? '';
  const key = args.key ?? server?.adminKey ?? '';
  const meter = new ProcessMeter();
  if (server !== undefined) meter.track('service', server.pid);
  const runDir = mkdtempSync(join(tmpdir(), 'cds-bench-run-'));
  try {
    const outcome = await workload.run({
      url,
      grpcAddress: grpcAddress ?? '',
      key,
      opts,
      runId: `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`,
      ownService: server !== undefined,
      meter,
      runDir,
      serviceEnv: env,
    });
    meter.end();
    meter.sample();
    const { cpu: ownCpu, ...figures } = outcome;
    const { commit, dirty } = gitCommit(REPO_ROOT);
    const cpu = { ...meter.cpu(), ...ownCpu };
    const result: BenchResult = {
      workload: workload.name,
      startedAt,
      ...figures,
      sustained: isSustained(outcome, opts.batch),
      cpu,
      cpuUs: costPerItem(cpu, outcome.achievedRate, outcome.deliveredRate),
      peakRssMb: meter.peakRssMb(),
      serverStartMs: server ? Math.round(server.startMs) : null,
      machine: machineInfo(),
      config: {
        ...opts,
        service:
          workload.startsServices === true
            ? { started: 'by the workload', env }
            : args.url === undefined
              ? { started: true, env }
              : { started: false, url: args.url, grpc: args.grpc ?? null },
        latencyFrom: 'intended send time of the open-loop schedule (coordinated omission corrected)',
        sustainedRule: SUSTAINED_RULE,
      },
      commit,
      dirty,
      plot: basename(plotFileOf(out)),
    };
    if (server !== undefined) {
      const exit = await server.stop('SIGTERM');
      if (exit.code !== 0)
        process.stderr.write(`service exited with ${JSON.stringify(exit)}\n${server.stderrTail()}\n`);
      server.cleanup();
    }
    // The profile files are written as the service exits.
    if (profileDir !== undefined && server !== undefined)
      return { ...result, profile: summarizeProfiles(profileDir, server.pid, meter.windowMono) };
    return result;
  } catch (err) {
    if (server !== undefined) {
      process.stderr.write(`--- service stderr tail (${server.stderrFile}) ---\n${server.stderrTail()}\n`);
      await server.kill();
      // The data directory can be large; the log is kept for diagnosis.
      rmSync(server.dataDir, { recursive: true, force: true });
    }
    throw err;
  } finally {
    meter.close();
    rmSync(runDir, { recursive: true, force: true });
  }
}

/** Writes a run's result and its plot. */
function writeRun(file: string, r: BenchResult): void {
  writeResult(file, r);
  writeFileSync(plotFileOf(file), runSvg(r));
}

/** Raises the rate x1.5 until a run fails, then bisects `steps` times between pass and fail. */
async function findMax(workload: Workload, opts: BenchOptions, args: CliArgs, out: string) {
  const runs: { file: string; r: BenchResult }[] = [];
  const base = out.replace(/\.json$/, '');
  const step = async (rate: number) => {
    // Each step has files of its own (result, plot, --cpu-profile directory), like a sequence's steps.
    const file = `${base}-rate-${Math.round(rate)}.json`;
    const r = await runOnce(workload, { ...opts, rate: Math.round(rate) }, args, file);
    writeRun(file, r);
    runs.push({ file, r });
    process.stdout.write(
      `rate ${r.offeredRate}: achieved ${r.achievedRate}, ack p99 ${r.latencyMs['publishAck']?.p99} ms, ` +
        `${r.sustained ? 'sustained' : 'NOT sustained'}\n`,
    );
    return r;
  };
  let lo = 0;
  let hi = 0;
  let best: BenchResult | undefined;
  for (let rate = opts.rate; ; rate *= 1.5) {
    const r = await step(rate);
    if (!r.sustained) {
      hi = r.offeredRate;
      break;
    }
    lo = r.offeredRate;
    best = r;
  }
  for (let i = 0; i < args.steps && hi - lo > Math.max(100, lo * 0.03); i++) {
    const r = await step((lo + hi) / 2);
    if (r.sustained) {
      lo = r.offeredRate;
      best = r;
    } else hi = r.offeredRate;
  }
  return { maxSustainedRate: lo, firstFailingRate: hi, best, runs };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const workload = WORKLOADS[args.workload];
  if (args.help || workload === undefined) {
    process.stdout.write(`${USAGE}\n`);
    process.exitCode = args.help ? 0 : 2;
    return;
  }
  const opts: BenchOptions = { ...workload.defaults, ...args.overrides };
  const out =
    args.out ??
    join(REPO_ROOT, 'bench', 'results', `${workload.name}${args.findMax ? '-findmax' : ''}-${stamp()}.json`);
  if (args.findMax) {
    const fm = await findMax(workload, opts, args, out);
    writeResult(out, {
      workload: workload.name,
      mode: 'find-max',
      maxSustainedRate: fm.maxSustainedRate,
      firstFailingRate: fm.firstFailingRate,
      steps: fm.runs.map(({ file, r }) => ({
        file: basename(file),
        offeredRate: r.offeredRate,
        achievedRate: r.achievedRate,
        deliveredRate: r.deliveredRate,
        sustained: r.sustained,
        windows: r.windows.map((w) => w.achievedRate),
        latencyMs: {
          publishAck: r.latencyMs['publishAck'],
          publishToDeliver: r.latencyMs['publishToDeliver'],
        },
        lost: r.lost,
        duplicates: r.duplicates,
        errors: r.errors,
        cpu: r.cpu,
      })),
      best: fm.best ?? null,
    });
    if (fm.best !== undefined) {
      writeFileSync(plotFileOf(out), runSvg(fm.best));
      process.stdout.write(`${formatTable(fm.best)}\n`);
    }
    process.stdout.write(
      `max sustained rate: ${fm.maxSustainedRate} decisions/s (first failing ${fm.firstFailingRate})\n`,
    );
  } else if (workload.steps !== undefined) {
    const base = out.replace(/\.json$/, '');
    const steps = [];
    for (const s of workload.steps(opts)) {
      const file = `${base}-${s.label}.json`;
      const r = await runOnce(workload, s.opts, args, file);
      writeRun(file, r);
      process.stdout.write(`${formatTable(r)}\nresult: ${file}\n\n`);
      steps.push({ ...stepSummary(s.label, basename(file), r), histograms: r.histograms });
    }
    const { commit, dirty } = gitCommit(REPO_ROOT);
    const machine = machineInfo();
    writeResult(out, {
      workload: workload.name,
      kind: 'sequence',
      startedAt: new Date().toISOString(),
      steps: steps.map(({ histograms: _h, ...s }) => s),
      machine,
      commit,
      dirty,
      plot: basename(plotFileOf(out)),
      config: { ...opts, sustainedRule: SUSTAINED_RULE },
    });
    writeFileSync(
      plotFileOf(out),
      sequenceSvg(
        workload.name,
        steps,
        `commit ${commit.slice(0, 12)}${dirty ? ' (dirty)' : ''} · ${machine.cpus} x ${machine.model} · ` +
          `load ${machine.loadAvg.join(' ')}`,
      ),
    );
    process.stdout.write(`${formatSequence(workload.name, steps)}\n`);
  } else {
    const r = await runOnce(workload, opts, args, out);
    writeRun(out, r);
    process.stdout.write(`${formatTable(r)}\n`);
  }
  process.stdout.write(`result: ${out}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
