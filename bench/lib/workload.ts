/** What a workload is given and what it gives back to the harness. */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CpuUse } from './proc.ts';
import type {
  GeneratorConfig,
  GeneratorMessage,
  GeneratorReport,
  LatencySummary,
  RateWindow,
} from './protocol.ts';

/** The options of one run, from the command line with the workload's defaults. */
export interface BenchOptions {
  readonly rate: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly batch: number;
  readonly connections: number;
  readonly seed: number;
  readonly portfolios: number;
  readonly windowS: number;
  /** `full` pages through the stored decisions afterwards; `none` skips it (lost is then null). */
  readonly verify: 'full' | 'none';
}

/** The service under test and the hooks that bracket the measured period. */
export interface RunContext {
  readonly url: string;
  readonly key: string;
  readonly opts: BenchOptions;
  /** Unique per run, so that runs against one server never share decision ids. */
  readonly runId: string;
  /** Called when the measured period starts (after the warm-up) and when its last answer arrived. */
  onMeasureStart(): void;
  onMeasureEnd(): void;
}

/** What a workload measured. */
export interface WorkloadOutcome {
  readonly offeredRate: number;
  readonly achievedRate: number;
  readonly windows: readonly RateWindow[];
  readonly latencyMs: Readonly<Record<string, LatencySummary>>;
  /** Acknowledged decisions not found afterwards (null when not verified). */
  readonly lost: number | null;
  readonly duplicates: { readonly acknowledged: number; readonly stored: number | null };
  readonly errors: Readonly<Record<string, number>>;
  readonly generator: { readonly cpu: CpuUse; readonly peakRssMb: number };
  readonly measuredWallS: number;
  /** Anything else the workload wants kept in the result. */
  readonly details: Readonly<Record<string, unknown>>;
}

/** A named workload with its default options. */
export interface Workload {
  readonly name: string;
  readonly description: string;
  readonly defaults: BenchOptions;
  run(ctx: RunContext): Promise<WorkloadOutcome>;
}

const GENERATOR = fileURLToPath(new URL('./generator.ts', import.meta.url));

/** Runs the load generator in a child process and resolves with its report. */
export function runGenerator(cfg: GeneratorConfig, ctx: RunContext): Promise<GeneratorReport> {
  return new Promise((resolve, reject) => {
    const child = fork(GENERATOR, [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let settled = false;
    child.on('message', (m: GeneratorMessage) => {
      if (m.type === 'measuring') ctx.onMeasureStart();
      else if (m.type === 'done') {
        ctx.onMeasureEnd();
        settled = true;
        resolve(m.report);
      } else if (m.type === 'failed') {
        settled = true;
        reject(new Error(`load generator failed: ${m.error}`));
      }
    });
    child.on('exit', (code, signal) => {
      if (!settled)
        reject(new Error(`load generator exited (code ${code}, signal ${signal}) without a report`));
    });
    child.send(cfg);
  });
}
