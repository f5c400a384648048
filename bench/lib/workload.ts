/** What a workload is given and what it gives back to the harness, and the generator processes. */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { monoMs } from './clock.ts';
import { encodeHistogram, mergeHistograms, summaryOf } from './hdr.ts';
import type { CpuUse, ProcessMeter } from './proc.ts';
import type {
  GeneratorCommand,
  GeneratorConfig,
  GeneratorMessage,
  GeneratorReport,
  LatencySummary,
  RateWindow,
} from './protocol.ts';

/** The options of one run, from the command line with the workload's defaults. */
export interface BenchOptions {
  /** Offered decisions/s. */
  readonly rate: number;
  readonly durationS: number;
  readonly warmupS: number;
  /** Decisions per publish request. */
  readonly batch: number;
  /** Keep-alive connections per generator process. */
  readonly connections: number;
  /** Generator processes sharing one open-loop schedule. */
  readonly generators: number;
  /** Seed and portfolios of the ingest workload's seeded decisions. */
  readonly seed: number;
  readonly portfolios: number;
  /** Width of a rate window, seconds. */
  readonly windowS: number;
  /** `full` pages through the stored decisions afterwards (ingest); `none` skips it. */
  readonly verify: 'full' | 'none';
  /** Subscribers, and the processes they run in. */
  readonly subscribers: number;
  readonly subscriberProcesses: number;
  /** Share of subscribers on gRPC Sessions (the rest on WebSocket); undefined: the profile's. */
  readonly grpcShare: number | undefined;
  /** The profile file (bench/workloads/fanout-profile.json by default). */
  readonly profile: string | undefined;
  /** Longest wait for the last deliveries after the last acknowledgement, seconds. */
  readonly drainS: number;
  /** replay: decisions published before the replay. */
  readonly count: number;
  /** latency: the rates of the sequence; subscribers: the ladder. */
  readonly rates: readonly number[];
  readonly ladder: readonly number[];
  /** cluster: `cds serve` instances, and partitions of the Pulsar topic. */
  readonly instances: number;
  readonly partitions: number;
}

/** Where clients reach one instance of the service. */
export interface ServiceAddress {
  readonly url: string;
  /** host:port of its gRPC listener. */
  readonly grpcAddress: string;
}

/** The service under test and the instruments of the run. */
export interface RunContext {
  readonly url: string;
  /** host:port of the service's gRPC listener. */
  readonly grpcAddress: string;
  readonly key: string;
  readonly opts: BenchOptions;
  /** Unique per run, so that runs against one server never share decision ids or subscriptions. */
  readonly runId: string;
  /** Whether the harness started the service (otherwise what the run creates is deleted after it). */
  readonly ownService: boolean;
  /** CPU and memory of every process (the service is already followed as `service`). */
  readonly meter: ProcessMeter;
  /** A directory for the run's files (receipts), removed afterwards. */
  readonly runDir: string;
  /** Environment for services the workload starts itself ({@link Workload.startsServices}). */
  readonly serviceEnv: Readonly<Record<string, string>>;
  /**
   * Several instances of one service (cluster mode): generator i publishes to instance i mod n and
   * subscriber process p connects first to instance p mod n. Absent: `url` and `grpcAddress` only.
   */
  readonly instances?: readonly ServiceAddress[];
}

/** Figures every workload gives; the harness adds CPU, memory, machine and commit. */
export interface WorkloadOutcome {
  readonly offeredRate: number;
  /** Acknowledged decisions/s over the measured period. */
  readonly achievedRate: number;
  /** Deliveries/s received over the measured period (null: the workload has no subscribers). */
  readonly deliveredRate: number | null;
  readonly subscribers: number;
  /** Publish windows: decisions due and acknowledged per window. */
  readonly windows: readonly RateWindow[];
  /** Delivery windows: deliveries due (of the decisions due in the window) and received in it. */
  readonly deliveryWindows: readonly RateWindow[] | null;
  /** Deliveries a decision has on average (from the profile's filters), for the window tolerance. */
  readonly deliveriesPerDecision: number | null;
  readonly latencyMs: Readonly<Record<string, LatencySummary | null>>;
  /** Encoded HDR histograms (bench/lib/hdr.ts) of the same latencies, for plots and merging. */
  readonly histograms: Readonly<Record<string, string>>;
  /** Acknowledged decisions (or expected deliveries) missing afterwards; null when not verified. */
  readonly lost: number | null;
  /** Decisions received or stored more than once, beyond declared redeliveries; null when unknown. */
  readonly duplicates: number | null;
  readonly duplicatesDetail: Readonly<Record<string, number | null>>;
  readonly errors: Readonly<Record<string, number>>;
  readonly measuredWallS: number;
  /** CPU of processes the meter could not measure over the measured period (their own figures). */
  readonly cpu?: Readonly<Record<string, CpuUse>>;
  /** Per second of the measured period: decisions due, acknowledged, deliveries received. */
  readonly series: {
    readonly offeredPerSecond: readonly number[];
    readonly ackedPerSecond: readonly number[];
    readonly deliveredPerSecond: readonly number[] | null;
  };
  /** Pulsar's own benchmark on the same broker, beside the service's figures (the cluster workload). */
  readonly pulsarPerf?: Readonly<Record<string, unknown>>;
  /** Anything else the workload wants kept in the result. */
  readonly details: Readonly<Record<string, unknown>>;
}

/** A named workload with its default options. */
export interface Workload {
  readonly name: string;
  readonly description: string;
  readonly defaults: BenchOptions;
  /** The workload starts (and stops) the services it measures; the harness starts none. */
  readonly startsServices?: boolean;
  /** A sequence workload: the runs it makes, each with a label used in file names. */
  steps?(opts: BenchOptions): { readonly label: string; readonly opts: BenchOptions }[];
  run(ctx: RunContext): Promise<WorkloadOutcome>;
}

/** Defaults shared by every workload (each overrides some). */
export const COMMON_DEFAULTS: BenchOptions = {
  rate: 20_000,
  durationS: 20,
  warmupS: 2,
  batch: 500,
  connections: 4,
  generators: 1,
  seed: 1,
  portfolios: 200,
  windowS: 5,
  verify: 'full',
  subscribers: 0,
  subscriberProcesses: 4,
  grpcShare: undefined,
  profile: undefined,
  drainS: 60,
  count: 100_000,
  rates: [],
  ladder: [],
  instances: 1,
  partitions: 4,
};

const GENERATOR = fileURLToPath(new URL('./generator.ts', import.meta.url));

/** Runs one generator process; resolves once it is loaded, with a function that starts it. */
function forkGenerator(
  cfg: GeneratorConfig,
  name: string,
  ctx: RunContext,
  onMeasuring: () => void,
): Promise<{ go(startMono: number): Promise<GeneratorReport> }> {
  return new Promise((resolveLoaded, rejectLoaded) => {
    const child = fork(GENERATOR, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    ctx.meter.track(name, child.pid!);
    let settled = false;
    let resolveDone: (r: GeneratorReport) => void = () => {};
    let rejectDone: (e: Error) => void = rejectLoaded;
    const done = new Promise<GeneratorReport>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    done.catch(() => undefined);
    child.on('message', (m: GeneratorMessage) => {
      if (m.type === 'loaded')
        resolveLoaded({
          go: (startMono) => {
            child.send({ type: 'go', startMono } satisfies GeneratorCommand);
            return done;
          },
        });
      else if (m.type === 'measuring') onMeasuring();
      else if (m.type === 'done') {
        ctx.meter.sample();
        settled = true;
        resolveDone(m.report);
      } else if (m.type === 'failed') {
        settled = true;
        const e = new Error(`load generator failed: ${m.error}`);
        rejectLoaded(e);
        rejectDone(e);
      }
    });
    child.on('exit', (code, signal) => {
      if (settled) return;
      const e = new Error(`load generator exited (code ${code}, signal ${signal}) without a report`);
      rejectLoaded(e);
      rejectDone(e);
    });
    child.send({ type: 'config', config: cfg } satisfies GeneratorCommand);
  });
}

/**
 * Runs `count` generator processes on one open-loop schedule (process i sends requests k with
 * k mod count = i, to `ctx.instances[i mod n]` when there are several) and merges their reports. The meter's measured period starts when the first
 * reaches the end of the warm-up; the workload ends it.
 */
export async function runGenerators(
  cfg: Omit<GeneratorConfig, 'shard'>,
  count: number,
  ctx: RunContext,
): Promise<GeneratorReport> {
  let measuring = false;
  const onMeasuring = () => {
    if (measuring) return;
    measuring = true;
    ctx.meter.start();
  };
  const loaded = await Promise.all(
    Array.from({ length: count }, (_, index) =>
      forkGenerator(
        {
          ...cfg,
          url: ctx.instances?.[index % ctx.instances.length]?.url ?? cfg.url,
          shard: { index, count },
        },
        count === 1 ? 'generator' : `generator-${index + 1}`,
        ctx,
        onMeasuring,
      ),
    ),
  );
  const startMono = monoMs() + 100;
  const reports = await Promise.all(loaded.map((g) => g.go(startMono)));
  return mergeReports(reports, cfg.windowS, cfg.durationS);
}

function sumArrays(arrays: readonly (readonly number[])[]): number[] {
  const out = new Array<number>(Math.max(0, ...arrays.map((a) => a.length))).fill(0);
  for (const a of arrays) a.forEach((v, i) => (out[i]! += v));
  return out;
}

/** One report of several generators that shared a schedule. */
export function mergeReports(
  reports: readonly GeneratorReport[],
  windowS: number,
  durationS: number,
): GeneratorReport {
  if (reports.length === 1) return reports[0]!;
  const first = reports[0]!;
  const sum = (f: (r: GeneratorReport) => number) => reports.reduce((a, r) => a + f(r), 0);
  const errors: Record<string, number> = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  const publishAck = mergeHistograms(reports.map((r) => r.publishAckHistogram));
  const sendLag = mergeHistograms(reports.map((r) => r.sendLagHistogram));
  const windows = first.windows.map((w, i) => {
    const offered = sum((r) => r.windows[i]?.offered ?? 0);
    const acknowledged = sum((r) => r.windows[i]?.acknowledged ?? 0);
    const lenS = Math.min(windowS, durationS - w.startS);
    const r1 = (x: number) => Math.round(x * 10) / 10;
    return {
      startS: w.startS,
      offered,
      acknowledged,
      offeredRate: r1(offered / lenS),
      achievedRate: r1(acknowledged / lenS),
      ratio: offered === 0 ? 0 : Math.round((acknowledged / offered) * 10_000) / 10_000,
    };
  });
  return {
    ...first,
    measuredWallS: Math.max(...reports.map((r) => r.measuredWallS)),
    requestsSent: sum((r) => r.requestsSent),
    requestsAcked: sum((r) => r.requestsAcked),
    decisionsSent: sum((r) => r.decisionsSent),
    decisionsAcked: sum((r) => r.decisionsAcked),
    measuredDecisionsAcked: sum((r) => r.measuredDecisionsAcked),
    duplicateAcks: sum((r) => r.duplicateAcks),
    errors,
    ackedRequests: reports.flatMap((r) => r.ackedRequests),
    publishAck: summaryOf(publishAck),
    sendLag: summaryOf(sendLag),
    publishAckHistogram: encodeHistogram(publishAck),
    sendLagHistogram: encodeHistogram(sendLag),
    offeredPerSecond: sumArrays(reports.map((r) => r.offeredPerSecond)),
    ackedPerSecond: sumArrays(reports.map((r) => r.ackedPerSecond)),
    windows,
    unanswered: sum((r) => r.unanswered),
    cpu: { userS: sum((r) => r.cpu.userS), systemS: sum((r) => r.cpu.systemS) },
    peakRssMb: Math.max(...reports.map((r) => r.peakRssMb)),
  };
}

/** Acknowledged decisions/s over the measured period (the schedule's duration at least). */
export function achievedRateOf(report: GeneratorReport, durationS: number): number {
  return Math.round((report.measuredDecisionsAcked / Math.max(durationS, report.measuredWallS)) * 10) / 10;
}
