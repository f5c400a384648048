/**
 * The benchmark harness: `npm run bench -- <workload> [options]` (see bench/lib/args.ts).
 *
 * It starts the service in a child process on a temporary data directory (unless --url is given),
 * runs the workload's open-loop load generator in another process, samples the service's CPU and
 * memory from /proc over the measured period, verifies what was stored, writes
 * bench/results/<workload>-<timestamp>.json and prints a table. With --find-max it raises the rate
 * until a run is not sustained and bisects towards the highest rate that holds.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, startServer, type ServerHandle } from '../test/helpers/server.ts';
import { parseArgs, USAGE, type CliArgs } from './lib/args.ts';
import { gitCommit, machineInfo } from './lib/machine.ts';
import { cpuBetween, cpuTimes, memoryMb, type CpuTimes, type CpuUse } from './lib/proc.ts';
import { formatTable, isSustained, SUSTAINED_RULE, writeResult, type BenchResult } from './lib/result.ts';
import type { BenchOptions, Workload } from './lib/workload.ts';
import { ingest } from './workloads/ingest.ts';

const WORKLOADS: Readonly<Record<string, Workload>> = { ingest };

/** The service's own limits must not be what a benchmark measures. */
const SERVICE_ENV = { CDS_RATE_REQUESTS_PER_SECOND: '1000000', CDS_RATE_DECISIONS_PER_SECOND: '1000000000' };

function stamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

/** One run at `opts.rate`: start the service, load it, verify, stop it; returns the result. */
async function runOnce(workload: Workload, opts: BenchOptions, args: CliArgs): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  let server: ServerHandle | undefined;
  const env = { ...SERVICE_ENV, ...args.env };
  if (args.url === undefined) server = await startServer({ env });
  const url = args.url ?? server!.url;
  const key = args.key ?? server!.adminKey;
  const pid = server?.pid;

  let cpuStart: CpuTimes | undefined;
  let cpuEnd: CpuTimes | undefined;
  let t0 = 0;
  let t1 = 0;
  let peakRss = 0;
  const sampler =
    pid === undefined
      ? undefined
      : setInterval(() => {
          const m = memoryMb(pid);
          if (m !== undefined) peakRss = Math.max(peakRss, m.peakRssMb);
        }, 500);
  try {
    const outcome = await workload.run({
      url,
      key,
      opts,
      runId: `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`,
      onMeasureStart: () => {
        t0 = performance.now();
        if (pid !== undefined) cpuStart = cpuTimes(pid);
      },
      onMeasureEnd: () => {
        t1 = performance.now();
        if (pid !== undefined) cpuEnd = cpuTimes(pid);
      },
    });
    if (pid !== undefined) peakRss = Math.max(peakRss, memoryMb(pid)?.peakRssMb ?? 0);
    let serviceCpu: CpuUse | null = null;
    if (cpuStart !== undefined && cpuEnd !== undefined)
      serviceCpu = cpuBetween(cpuStart, cpuEnd, (t1 - t0) / 1000);
    const { commit, dirty } = gitCommit(REPO_ROOT);
    const partial = {
      workload: workload.name,
      startedAt,
      offeredRate: outcome.offeredRate,
      achievedRate: outcome.achievedRate,
      windows: outcome.windows,
      latencyMs: outcome.latencyMs,
      lost: outcome.lost,
      duplicates: outcome.duplicates,
      errors: outcome.errors,
    };
    const result: BenchResult = {
      ...partial,
      sustained: isSustained(partial, opts.batch),
      cpu: { service: serviceCpu, generator: outcome.generator.cpu },
      peakRssMb: {
        service: pid === undefined ? null : Math.round(peakRss * 10) / 10,
        generator: outcome.generator.peakRssMb,
      },
      measuredWallS: Math.round(outcome.measuredWallS * 1000) / 1000,
      serverStartMs: server ? Math.round(server.startMs) : null,
      machine: machineInfo(),
      config: {
        ...opts,
        service: args.url === undefined ? { started: true, env } : { started: false, url: args.url },
        latencyFrom: 'intended send time (open loop, coordinated omission corrected)',
        sustainedRule: SUSTAINED_RULE,
      },
      commit,
      dirty,
      details: outcome.details,
    };
    if (server !== undefined) {
      const exit = await server.stop('SIGTERM');
      if (exit.code !== 0)
        process.stderr.write(`service exited with ${JSON.stringify(exit)}\n${server.stderrTail()}\n`);
      server.cleanup();
    }
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
    if (sampler !== undefined) clearInterval(sampler);
  }
}

/** Raises the rate x1.5 until a run fails, then bisects `steps` times between pass and fail. */
async function findMax(workload: Workload, opts: BenchOptions, args: CliArgs) {
  const runs: BenchResult[] = [];
  const step = async (rate: number) => {
    const r = await runOnce(workload, { ...opts, rate: Math.round(rate) }, args);
    runs.push(r);
    process.stdout.write(
      `rate ${r.offeredRate}: achieved ${r.achievedRate}, p99 ${r.latencyMs['publishAck']?.p99} ms, ` +
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
    const fm = await findMax(workload, opts, args);
    writeResult(out, {
      workload: workload.name,
      mode: 'find-max',
      maxSustainedRate: fm.maxSustainedRate,
      firstFailingRate: fm.firstFailingRate,
      steps: fm.runs.map((r) => ({
        offeredRate: r.offeredRate,
        achievedRate: r.achievedRate,
        sustained: r.sustained,
        windows: r.windows.map((w) => w.achievedRate),
        latencyMs: r.latencyMs['publishAck'],
        lost: r.lost,
        errors: r.errors,
        cpu: r.cpu,
      })),
      best: fm.best ?? null,
    });
    if (fm.best !== undefined) process.stdout.write(`${formatTable(fm.best)}\n`);
    process.stdout.write(
      `max sustained rate: ${fm.maxSustainedRate} decisions/s (first failing ${fm.firstFailingRate})\n`,
    );
  } else {
    const r = await runOnce(workload, opts, args);
    writeResult(out, r);
    process.stdout.write(`${formatTable(r)}\n`);
  }
  process.stdout.write(`result: ${out}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
