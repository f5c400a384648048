/** The result file of one benchmark run, and the table printed from it. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MachineInfo } from './machine.ts';
import type { CpuUse } from './proc.ts';
import type { ThreadProfile } from './cpuprofile.ts';
import type { LatencySummary, RateWindow } from './protocol.ts';
import type { WorkloadOutcome } from './workload.ts';

/** Everything recorded about one run (bench/results/<workload>-<timestamp>.json). */
export interface BenchResult extends Omit<WorkloadOutcome, 'cpu'> {
  readonly workload: string;
  readonly startedAt: string;
  /** True when the rate counts as achieved: see {@link SUSTAINED_RULE}. */
  readonly sustained: boolean;
  /** CPU per process over the measured period: `service`, `generator`, `subscribers-1`, ... */
  readonly cpu: Readonly<Record<string, CpuUse | null>>;
  /** Peak resident memory per process, MB. */
  readonly peakRssMb: Readonly<Record<string, number | null>>;
  readonly serverStartMs: number | null;
  readonly machine: MachineInfo;
  readonly config: Readonly<Record<string, unknown>>;
  readonly commit: string;
  readonly dirty: boolean;
  /** The latency plot written next to the result (file name). */
  readonly plot: string;
  /**
   * CPU microseconds per decision achieved over the measured period, per process (`service`,
   * `generator`, `subscribers-N`, and `subscribers` for their sum); per delivery where there are
   * deliveries. What one decision costs the machine, whatever the rate.
   */
  readonly cpuUs: {
    readonly perDecision: Readonly<Record<string, number>>;
    readonly perDelivery: Readonly<Record<string, number>> | null;
  };
  /** With --cpu-profile: where the service's threads spent the measured period (main thread first). */
  readonly profile?: readonly ThreadProfile[];
}

/** One step of a sequence workload, as its summary file lists it. */
export interface StepSummary {
  readonly label: string;
  readonly file: string;
  readonly plot: string;
  readonly offeredRate: number;
  readonly achievedRate: number;
  readonly deliveredRate: number | null;
  readonly subscribers: number;
  readonly sustained: boolean;
  readonly latencyMs: {
    readonly publishAck: LatencySummary | null;
    readonly publishToDeliver: LatencySummary | null;
  };
  readonly lost: number | null;
  readonly duplicates: number | null;
  readonly cpu: Readonly<Record<string, CpuUse | null>>;
  readonly peakRssMb: Readonly<Record<string, number | null>>;
}

/** The share of the offered rate every window must reach. */
export const SUSTAINED_RATIO = 0.99;

/** How {@link isSustained} judges, recorded in every result. */
export const SUSTAINED_RULE =
  'every window (5 s by default) acknowledged >= 99% of the decisions offered in it, less one request (the unit ' +
  'acknowledgements come in); with subscribers, every window also received >= 99% of the deliveries due in it ' +
  "(those of the decisions offered in it), less one request's deliveries; the whole run >= 99% of the offered " +
  'rate; no failed request; nothing lost or duplicated';

/**
 * Is the run sustained (see {@link SUSTAINED_RULE})? Acknowledgements arrive a request (`batch`
 * decisions) at a time, so a window cannot be judged finer than one request. An unverified run
 * (lost null) is judged on its rates and errors alone.
 */
export function isSustained(
  r: Pick<
    WorkloadOutcome,
    | 'windows'
    | 'deliveryWindows'
    | 'deliveriesPerDecision'
    | 'lost'
    | 'duplicates'
    | 'errors'
    | 'offeredRate'
    | 'achievedRate'
  >,
  batch: number,
): boolean {
  const holds = (ws: readonly RateWindow[], slack: number) =>
    ws.length > 0 && ws.every((w) => w.acknowledged >= SUSTAINED_RATIO * w.offered - slack);
  return (
    holds(r.windows, batch) &&
    (r.deliveryWindows === null || holds(r.deliveryWindows, batch * (r.deliveriesPerDecision ?? 1))) &&
    r.achievedRate >= SUSTAINED_RATIO * r.offeredRate &&
    (r.lost ?? 0) === 0 &&
    (r.duplicates ?? 0) === 0 &&
    Object.keys(r.errors).length === 0
  );
}

/** The figures of a step that its sequence's summary keeps. */
export function stepSummary(label: string, file: string, r: BenchResult): StepSummary {
  return {
    label,
    file,
    plot: r.plot,
    offeredRate: r.offeredRate,
    achievedRate: r.achievedRate,
    deliveredRate: r.deliveredRate,
    subscribers: r.subscribers,
    sustained: r.sustained,
    latencyMs: {
      publishAck: r.latencyMs['publishAck'] ?? null,
      publishToDeliver: r.latencyMs['publishToDeliver'] ?? null,
    },
    lost: r.lost,
    duplicates: r.duplicates,
    cpu: r.cpu,
    peakRssMb: r.peakRssMb,
  };
}

/** Writes the result as JSON, creating the folder. */
export function writeResult(file: string, result: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
}

const fmt = (n: number | null | undefined, digits = 0) =>
  n === null || n === undefined ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: digits });

const lat = (l: LatencySummary | null | undefined) =>
  l ? `${fmt(l.p50, 2)} / ${fmt(l.p99, 2)} / ${fmt(l.p999, 2)} / ${fmt(l.max, 2)}` : '-';

const windowsText = (ws: readonly RateWindow[]) =>
  ws.map((w) => `${fmt(w.achievedRate)} (${(w.ratio * 100).toFixed(1)}%)`).join(', ');

function table(rows: readonly (readonly [string, string])[]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

/** A plain-text table of one result. */
export function formatTable(r: BenchResult): string {
  const rows: [string, string][] = [
    ['workload', `${r.workload}${r.subscribers > 0 ? `, ${fmt(r.subscribers)} subscribers` : ''}`],
    ['offered / achieved (decisions/s)', `${fmt(r.offeredRate)} / ${fmt(r.achievedRate)}`],
    ['sustained (every window >= 99%)', r.sustained ? 'yes' : 'NO'],
    ['publish windows (decisions/s)', windowsText(r.windows)],
  ];
  if (r.deliveredRate !== null)
    rows.push([
      'delivered (deliveries/s)',
      `${fmt(r.deliveredRate)} (${fmt(r.deliveriesPerDecision, 3)} per decision)`,
    ]);
  if (r.deliveryWindows !== null)
    rows.push(['delivery windows (deliveries/s)', windowsText(r.deliveryWindows)]);
  rows.push(['publish ack ms p50/p99/p99.9/max', lat(r.latencyMs['publishAck'])]);
  if (r.latencyMs['publishToDeliver'] !== undefined)
    rows.push(['publish-to-delivery ms p50/p99/p99.9/max', lat(r.latencyMs['publishToDeliver'])]);
  rows.push(
    [
      'lost / duplicates',
      `${fmt(r.lost)} / ${fmt(r.duplicates)}  ${JSON.stringify(r.duplicatesDetail)}` +
        (r.details['drainEndedBy'] === undefined
          ? ''
          : `, drain ended: ${String(r.details['drainEndedBy'])}`),
    ],
    ['errors', Object.keys(r.errors).length ? JSON.stringify(r.errors) : 'none'],
  );
  for (const [name, c] of Object.entries(r.cpu))
    rows.push([`cpu ${name}`, c ? `${fmt(c.totalS, 2)} s, ${fmt(c.pctOfOneCore, 1)}% of one core` : '-']);
  const per = (m: Readonly<Record<string, number>>) =>
    Object.entries(m)
      .map(([k, v]) => `${k} ${fmt(v, 1)}`)
      .join(', ');
  rows.push(['cpu us per decision', per(r.cpuUs.perDecision)]);
  if (r.cpuUs.perDelivery !== null) rows.push(['cpu us per delivery', per(r.cpuUs.perDelivery)]);
  for (const t of r.profile ?? [])
    rows.push([
      `service thread ${t.thread} busy ${fmt(t.busyPct, 1)}%`,
      t.areas
        .filter((a) => a.pct >= 1)
        .map((a) => `${a.name} ${fmt(a.pct, 1)}%`)
        .join(', '),
    ]);
  rows.push(
    [
      'peak RSS MB',
      Object.entries(r.peakRssMb)
        .map(([k, v]) => `${k} ${fmt(v, 1)}`)
        .join(', '),
    ],
    [
      'machine',
      `${r.machine.cpus} x ${r.machine.model}, ${fmt(r.machine.memoryMb)} MB, node ${r.machine.node}, load ${r.machine.loadAvg.join(' ')}`,
    ],
    ['commit', `${r.commit.slice(0, 12)}${r.dirty ? ' (dirty tree)' : ''}`],
    ['plot', r.plot],
  );
  return table(rows);
}

/** A plain-text table of a sequence: one line per step. */
export function formatSequence(workload: string, steps: readonly StepSummary[]): string {
  const head = [
    'step',
    'subscribers',
    'offered/s',
    'achieved/s',
    'delivered/s',
    'sustained',
    'ack p99',
    'deliver p50/p99/p99.9/max',
    'lost',
    'dup',
  ];
  const rows = steps.map((s) => [
    s.label,
    fmt(s.subscribers),
    fmt(s.offeredRate),
    fmt(s.achievedRate),
    fmt(s.deliveredRate),
    s.sustained ? 'yes' : 'NO',
    fmt(s.latencyMs.publishAck?.p99, 2),
    lat(s.latencyMs.publishToDeliver),
    fmt(s.lost),
    fmt(s.duplicates),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [`${workload}:`, line(head), ...rows.map(line)].join('\n');
}
