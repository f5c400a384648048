/** HDR histograms of latencies in microseconds, their summaries in milliseconds, and their encoding. */
import * as hdr from 'hdr-histogram-js';
import type { LatencySummary } from './protocol.ts';

/** A histogram of microseconds from 1 µs to one hour, 3 significant digits. */
export function latencyHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** Records a latency given in milliseconds (clamped to the histogram's range). */
export function recordMs(h: hdr.Histogram, ms: number): void {
  h.recordValue(Math.min(3_600_000_000, Math.max(1, Math.round(ms * 1000))));
}

/**
 * The summary in milliseconds (to the microsecond). A percentile is the highest value of its
 * bucket (within 0.1%), capped at the largest value recorded, so that p99.9 never exceeds max.
 */
export function summaryOf(h: hdr.Histogram): LatencySummary {
  const ms = (us: number) => Math.round(us) / 1000;
  const at = (p: number) => ms(Math.min(h.getValueAtPercentile(p), h.maxValue));
  return {
    count: h.totalCount,
    mean: ms(h.mean),
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    max: ms(h.maxValue),
  };
}

/** The histogram as compressed base64 (HdrHistogram's own format: any HdrHistogram tool reads it). */
export function encodeHistogram(h: hdr.Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Decodes {@link encodeHistogram}'s text. */
export function decodeHistogram(text: string): hdr.Histogram {
  return hdr.decodeFromCompressedBase64(text);
}

/** One histogram holding all of `texts` (encoded histograms). */
export function mergeHistograms(texts: readonly string[]): hdr.Histogram {
  const out = latencyHistogram();
  for (const t of texts) out.add(decodeHistogram(t));
  return out;
}

/**
 * Points of the percentile distribution for a plot: x = log10(1 / (1 - p)) from 0 (p = 0) to the
 * resolution of the data (log10 of the count), y = the latency in ms at that percentile; the last
 * point is the maximum.
 */
export function percentileCurve(h: hdr.Histogram, steps = 120): { x: number; ms: number }[] {
  if (h.totalCount === 0) return [];
  const xMax = Math.max(1, Math.log10(h.totalCount));
  const out: { x: number; ms: number }[] = [];
  for (let i = 0; i < steps; i++) {
    const x = (xMax * i) / steps;
    const p = 100 * (1 - 10 ** -x);
    out.push({ x, ms: Math.min(h.getValueAtPercentile(p), h.maxValue) / 1000 });
  }
  out.push({ x: xMax, ms: h.maxValue / 1000 });
  return out;
}
