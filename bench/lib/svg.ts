/**
 * Latency plots as SVG text, written next to each result file: the percentile distribution of
 * publish-to-delivery and publish-acknowledgement latency on a log-scaled percentile axis (as
 * HdrHistogram's plotter draws it: 90%, 99%, 99.9%, ... equally spaced), and the rates per second
 * over the run. No dependency: plain strings.
 */
import { decodeHistogram, percentileCurve } from './hdr.ts';
import type { BenchResult, StepSummary } from './result.ts';

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const FONT = 'font-family="Helvetica, Arial, sans-serif"';

/** A line of a panel. */
export interface Series {
  readonly name: string;
  readonly color: string;
  readonly dashed?: boolean;
  readonly points: readonly { readonly x: number; readonly y: number }[];
}

interface Tick {
  readonly v: number;
  readonly label: string;
}

/** Options of one panel. */
interface Panel {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly xRange: readonly [number, number];
  readonly xTicks: readonly Tick[];
  readonly yLog: boolean;
  readonly series: readonly Series[];
  /** Vertical guide lines (x values). */
  readonly guides?: readonly number[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const num = (v: number) =>
  v >= 1000 ? v.toLocaleString('en-US', { maximumFractionDigits: 0 }) : String(Math.round(v * 1000) / 1000);

/** Milliseconds with about 3 significant digits. */
const ms = (v: number) =>
  v >= 100 ? num(Math.round(v)) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3);

/** Round tick values covering [0, max]. */
function linearTicks(max: number): Tick[] {
  const top = max > 0 ? max : 1;
  const raw = top / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: Tick[] = [];
  for (let v = 0; v <= top + step * 0.999; v += step) out.push({ v, label: num(v) });
  return out;
}

/** Ticks 1-2-5 per decade covering [min, max] (min > 0). */
function logTicks(min: number, max: number): Tick[] {
  const out: Tick[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++)
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= min / 1.0001 && v <= max * 1.0001) out.push({ v, label: num(v) });
    }
  return out;
}

/** Percentile ticks: 0%, 90%, 99%, ... as far as `xMax` (x = log10(1 / (1 - p))). */
export function percentileTicks(xMax: number): Tick[] {
  const out: Tick[] = [{ v: 0, label: '0%' }];
  for (let k = 1; k <= Math.floor(xMax + 1e-9); k++)
    out.push({ v: k, label: `${(100 - 100 / 10 ** k).toString()}%` });
  return out;
}

function panel(p: Panel): string {
  const ys = p.series.flatMap((s) => s.points.map((q) => q.y)).filter((y) => Number.isFinite(y));
  const yMaxData = ys.length === 0 ? 1 : Math.max(...ys);
  const positive = ys.filter((y) => y > 0);
  const yMinData = positive.length === 0 ? 0.001 : Math.min(...positive);
  const yTicks = p.yLog
    ? logTicks(
        10 ** Math.floor(Math.log10(yMinData)),
        10 ** Math.ceil(Math.log10(Math.max(yMaxData, yMinData * 10))),
      )
    : linearTicks(yMaxData * 1.05);
  const y0 = yTicks[0]!.v;
  const y1 = yTicks[yTicks.length - 1]!.v;
  const [x0, x1] = p.xRange;
  const left = p.x + 70;
  const right = p.x + p.w - 250; // the legend is to the right of the plot
  const top = p.y + 28;
  const bottom = p.y + p.h - 40;
  const sx = (x: number) => left + ((x - x0) / (x1 - x0 || 1)) * (right - left);
  const sy = (y: number) => {
    const f = p.yLog
      ? (Math.log10(Math.max(y, y0)) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0) || 1)
      : (y - y0) / (y1 - y0 || 1);
    return bottom - Math.min(1, Math.max(0, f)) * (bottom - top);
  };
  const parts: string[] = [
    `<text x="${p.x + 8}" y="${p.y + 16}" font-size="14" font-weight="bold" ${FONT}>${esc(p.title)}</text>`,
    `<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#999"/>`,
  ];
  for (const t of yTicks) {
    const y = sy(t.v).toFixed(1);
    parts.push(
      `<line x1="${left}" y1="${y}" x2="${right}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${left - 6}" y="${y}" font-size="11" text-anchor="end" dominant-baseline="middle" ${FONT}>${esc(t.label)}</text>`,
    );
  }
  for (const t of p.xTicks) {
    const x = sx(t.v).toFixed(1);
    parts.push(
      `<line x1="${x}" y1="${top}" x2="${x}" y2="${bottom}" stroke="#e5e5e5"/>`,
      `<text x="${x}" y="${bottom + 15}" font-size="11" text-anchor="middle" ${FONT}>${esc(t.label)}</text>`,
    );
  }
  for (const g of p.guides ?? []) {
    const x = sx(g).toFixed(1);
    parts.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${bottom}" stroke="#bbb" stroke-dasharray="2,3"/>`);
  }
  parts.push(
    `<text x="${(left + right) / 2}" y="${bottom + 32}" font-size="12" text-anchor="middle" ${FONT}>${esc(p.xLabel)}</text>`,
    `<text x="${p.x + 14}" y="${(top + bottom) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 ${p.x + 14} ${(top + bottom) / 2})" ${FONT}>${esc(p.yLabel)}</text>`,
  );
  p.series.forEach((s, i) => {
    if (s.points.length > 0) {
      const d = s.points
        .map((q, j) => `${j === 0 ? 'M' : 'L'}${sx(q.x).toFixed(1)},${sy(q.y).toFixed(1)}`)
        .join('');
      parts.push(
        `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`,
      );
    }
    const ly = top + 8 + i * 16;
    parts.push(
      `<line x1="${right + 12}" y1="${ly}" x2="${right + 36}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`,
      `<text x="${right + 42}" y="${ly}" font-size="11" dominant-baseline="middle" ${FONT}>${esc(s.name)}</text>`,
    );
  });
  return parts.join('\n');
}

function document(w: number, h: number, title: string, subtitle: readonly string[], body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="16" y="22" font-size="15" font-weight="bold" ${FONT}>${esc(title)}</text>`,
    ...subtitle.map(
      (line, i) => `<text x="16" y="${40 + i * 15}" font-size="12" fill="#444" ${FONT}>${esc(line)}</text>`,
    ),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

const curveOf = (encoded: string | undefined) =>
  encoded === undefined ? [] : percentileCurve(decodeHistogram(encoded)).map((q) => ({ x: q.x, y: q.ms }));

/** Log scale when the curves span more than two orders of magnitude. */
const wantsLog = (series: readonly Series[]) => {
  const ys = series.flatMap((s) => s.points.map((q) => q.y)).filter((y) => y > 0);
  return ys.length > 0 && Math.max(...ys) / Math.min(...ys) > 100;
};

function latencyPanel(series: Series[], y: number, title: string): string {
  const xMax = Math.max(1, ...series.flatMap((s) => s.points.map((q) => q.x)));
  const yLog = wantsLog(series);
  return panel({
    x: 0,
    y,
    w: 960,
    h: 400,
    title,
    xLabel: 'percentile (log scale of 1 / (1 - p))',
    yLabel: `latency, ms${yLog ? ' (log scale)' : ''}`,
    xRange: [0, xMax],
    xTicks: percentileTicks(xMax),
    yLog,
    series,
  });
}

const pctLine = (
  name: string,
  l: { p50: number; p99: number; p999: number; max: number } | null | undefined,
) => (l ? `${name}: p50 ${ms(l.p50)}, p99 ${ms(l.p99)}, p99.9 ${ms(l.p999)}, max ${ms(l.max)} ms` : '');

/** The plot of one run: latency by percentile, and rates per second. */
export function runSvg(r: BenchResult): string {
  const latency: Series[] = [];
  const deliver = curveOf(r.histograms['publishToDeliver']);
  if (deliver.length > 0) latency.push({ name: 'publish to delivery', color: PALETTE[0]!, points: deliver });
  const ack = curveOf(r.histograms['publishAck']);
  if (ack.length > 0) latency.push({ name: 'publish acknowledgement', color: PALETTE[1]!, points: ack });

  const perSecond = (xs: readonly number[] | null) =>
    xs === null ? [] : xs.map((v, i) => ({ x: i + 0.5, y: v }));
  const rates: Series[] = [];
  if (r.series.offeredPerSecond.length > 0)
    rates.push({
      name: 'offered decisions/s',
      color: '#777',
      dashed: true,
      points: perSecond(r.series.offeredPerSecond),
    });
  if (r.series.ackedPerSecond.length > 0)
    rates.push({
      name: 'acknowledged decisions/s',
      color: PALETTE[1]!,
      points: perSecond(r.series.ackedPerSecond),
    });
  if (r.series.deliveredPerSecond !== null)
    rates.push({
      name: 'deliveries received/s',
      color: PALETTE[0]!,
      points: perSecond(r.series.deliveredPerSecond),
    });
  const tMax = Math.max(1, ...rates.map((s) => s.points.length));
  const windowS = Number((r.config['windowS'] as number | undefined) ?? 5);
  // The window boundaries of the measured period (the windows the sustained rule judges).
  const measuredS = Number((r.config['durationS'] as number | undefined) ?? tMax);
  const guides: number[] = [];
  if (r.series.offeredPerSecond.length > 0)
    for (let t = windowS; t <= Math.min(tMax, measuredS); t += windowS) guides.push(t);
  const timeTicks = linearTicks(tMax).filter((t) => t.v <= tMax);

  const title =
    `${r.workload}: ${num(r.offeredRate)} decisions/s offered, ${num(r.achievedRate)} achieved` +
    (r.deliveredRate === null
      ? ''
      : `, ${num(r.deliveredRate)} deliveries/s to ${num(r.subscribers)} subscribers`) +
    ` (${r.sustained ? 'sustained' : 'NOT sustained'})`;
  const subtitle = [
    [
      pctLine('publish to delivery', r.latencyMs['publishToDeliver']),
      pctLine('publish ack', r.latencyMs['publishAck']),
    ]
      .filter((s) => s !== '')
      .join(' · '),
    `lost ${r.lost ?? 'unknown'}, duplicates ${r.duplicates ?? 'unknown'} · commit ${r.commit.slice(0, 12)}` +
      `${r.dirty ? ' (dirty)' : ''} · ${r.startedAt} · ${r.machine.cpus} cpus, load ${r.machine.loadAvg.join(' ')}`,
  ];
  return document(960, 780, title, subtitle, [
    latencyPanel(
      latency,
      76,
      'Latency by percentile (from the intended send time: coordinated omission corrected)',
    ),
    panel({
      x: 0,
      y: 490,
      w: 960,
      h: 280,
      title:
        r.workload === 'replay'
          ? 'Replay: deliveries received per second from the first subscriber connect'
          : `Rates per second of the measured period (dotted: ${windowS} s windows)`,
      xLabel: 'seconds',
      yLabel: 'per second',
      xRange: [0, tMax],
      xTicks: timeTicks,
      yLog: false,
      series: rates,
      guides,
    }),
  ]);
}

/** The plot of a sequence: every step's delivery (solid) and ack (dashed) curves, and p99 by step. */
export function sequenceSvg(
  workload: string,
  steps: readonly (StepSummary & { readonly histograms: Readonly<Record<string, string>> })[],
  footer: string,
): string {
  const subtitle = [
    steps
      .map((s) => {
        const d = s.latencyMs.publishToDeliver;
        return `${s.label}: delivery p99 ${d ? `${ms(d.p99)} ms` : '-'}, lost ${s.lost ?? 'unknown'}`;
      })
      .join(' · '),
    footer,
  ];
  const latency: Series[] = [];
  steps.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const d = curveOf(s.histograms['publishToDeliver']);
    if (d.length > 0) latency.push({ name: `${s.label}: publish to delivery`, color, points: d });
    const a = curveOf(s.histograms['publishAck']);
    if (a.length > 0) latency.push({ name: `${s.label}: publish ack`, color, dashed: true, points: a });
  });
  const p = (f: (s: StepSummary) => number | undefined) =>
    steps.flatMap((s, i) => {
      const v = f(s);
      return v === undefined ? [] : [{ x: i, y: v }];
    });
  const byStep: Series[] = [
    { name: 'delivery p50', color: PALETTE[2]!, points: p((s) => s.latencyMs.publishToDeliver?.p50) },
    { name: 'delivery p99', color: PALETTE[0]!, points: p((s) => s.latencyMs.publishToDeliver?.p99) },
    { name: 'delivery p99.9', color: PALETTE[4]!, points: p((s) => s.latencyMs.publishToDeliver?.p999) },
    { name: 'ack p99', color: PALETTE[1]!, dashed: true, points: p((s) => s.latencyMs.publishAck?.p99) },
  ];
  const title = `${workload}: ${steps.map((s) => `${s.label} ${s.sustained ? 'sustained' : 'NOT sustained'}`).join(', ')}`;
  return document(960, 780, title, subtitle, [
    latencyPanel(latency, 76, 'Latency by percentile, each step (from the intended send time)'),
    panel({
      x: 0,
      y: 490,
      w: 960,
      h: 280,
      title: 'Percentiles by step',
      xLabel: 'step',
      yLabel: `latency, ms${wantsLog(byStep) ? ' (log scale)' : ''}`,
      xRange: [-0.25, Math.max(0.25, steps.length - 0.75)],
      xTicks: steps.map((s, i) => ({
        v: i,
        label: `${s.label} (${num(s.offeredRate)}/s, ${num(s.subscribers)} subs)`,
      })),
      yLog: wantsLog(byStep),
      series: byStep,
    }),
  ]);
}
