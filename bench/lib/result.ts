/** The result file of one benchmark run, and the table printed from it. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MachineInfo } from './machine.ts';
import type { CpuUse } from './proc.ts';
import type { LatencySummary, RateWindow } from './protocol.ts';

/** Everything recorded about one run (bench/results/<workload>-<timestamp>.json). */
export interface BenchResult {
  readonly workload: string;
  readonly startedAt: string;
  /** Decisions per second offered and achieved over the measured period. */
  readonly offeredRate: number;
  readonly achievedRate: number;
  /** True when every window achieved >= 99% of the offered rate, with nothing lost or failed. */
  readonly sustained: boolean;
  readonly windows: readonly RateWindow[];
  readonly latencyMs: Readonly<Record<string, LatencySummary>>;
  readonly lost: number | null;
  readonly duplicates: { readonly acknowledged: number; readonly stored: number | null };
  readonly errors: Readonly<Record<string, number>>;
  readonly cpu: { readonly service: CpuUse | null; readonly generator: CpuUse };
  readonly peakRssMb: { readonly service: number | null; readonly generator: number };
  readonly measuredWallS: number;
  readonly serverStartMs: number | null;
  readonly machine: MachineInfo;
  readonly config: Readonly<Record<string, unknown>>;
  readonly commit: string;
  readonly dirty: boolean;
  readonly details: Readonly<Record<string, unknown>>;
}

/** The share of the offered rate every window must reach. */
export const SUSTAINED_RATIO = 0.99;

/** How {@link isSustained} judges, recorded in every result. */
export const SUSTAINED_RULE =
  'every window acknowledged >= 99% of the decisions offered in it, less one request (the unit acknowledgements ' +
  'come in), the whole run >= 99% of the offered rate, no failed request, nothing lost';

/**
 * Is the run sustained (see {@link SUSTAINED_RULE})? Acknowledgements arrive a request (`batch`
 * decisions) at a time, so a window cannot be judged finer than one request. An unverified run
 * (lost null) is judged on its rates and errors alone.
 */
export function isSustained(
  r: Pick<BenchResult, 'windows' | 'lost' | 'errors' | 'offeredRate' | 'achievedRate'>,
  batch: number,
): boolean {
  return (
    r.windows.length > 0 &&
    r.windows.every((w) => w.acknowledged >= SUSTAINED_RATIO * w.offered - batch) &&
    r.achievedRate >= SUSTAINED_RATIO * r.offeredRate &&
    (r.lost ?? 0) === 0 &&
    Object.keys(r.errors).length === 0
  );
}

/** Writes the result as JSON, creating the folder. */
export function writeResult(file: string, result: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
}

const fmt = (n: number | null | undefined, digits = 0) =>
  n === null || n === undefined ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: digits });

/** A plain-text table of one result. */
export function formatTable(r: BenchResult): string {
  const l = r.latencyMs['publishAck'];
  const rows: [string, string][] = [
    ['workload', r.workload],
    ['offered / achieved (decisions/s)', `${fmt(r.offeredRate)} / ${fmt(r.achievedRate)}`],
    ['sustained (every window >= 99%)', r.sustained ? 'yes' : 'NO'],
    [
      'windows achieved (decisions/s)',
      r.windows.map((w) => `${fmt(w.achievedRate)} (${(w.ratio * 100).toFixed(1)}%)`).join(', '),
    ],
    [
      'publish ack latency ms p50/p99/p99.9/max',
      l ? `${fmt(l.p50, 2)} / ${fmt(l.p99, 2)} / ${fmt(l.p999, 2)} / ${fmt(l.max, 2)}` : '-',
    ],
    [
      'lost / duplicates (acked, stored)',
      `${fmt(r.lost)} / ${fmt(r.duplicates.acknowledged)}, ${fmt(r.duplicates.stored)}`,
    ],
    ['errors', Object.keys(r.errors).length ? JSON.stringify(r.errors) : 'none'],
    [
      'cpu service (s, % of one core)',
      r.cpu.service ? `${fmt(r.cpu.service.totalS, 2)} s, ${fmt(r.cpu.service.pctOfOneCore, 1)}%` : '-',
    ],
    [
      'cpu generator (s, % of one core)',
      `${fmt(r.cpu.generator.totalS, 2)} s, ${fmt(r.cpu.generator.pctOfOneCore, 1)}%`,
    ],
    ['peak RSS MB service / generator', `${fmt(r.peakRssMb.service, 1)} / ${fmt(r.peakRssMb.generator, 1)}`],
    [
      'machine',
      `${r.machine.cpus} x ${r.machine.model}, ${fmt(r.machine.memoryMb)} MB, node ${r.machine.node}`,
    ],
    ['commit', `${r.commit.slice(0, 12)}${r.dirty ? ' (dirty tree)' : ''}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}
