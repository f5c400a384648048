/**
 * The honest figures of a delivery run: the subscribers' receipts (bench/lib/receipts.ts) joined
 * with the generator's acknowledgements and the profile's filters evaluated by the harness. Nothing
 * here comes from the service's own counters.
 *
 * - expected: every (subscriber, decision) pair where the decision's publish was acknowledged and
 *   the subscriber's filter (as data, bench/lib/profile.ts) takes it;
 * - lost: expected pairs with no receipt;
 * - duplicates: a second receipt of the same decision and revision by one subscriber with
 *   deliveryCount 1 (redeliveries, deliveryCount > 1, are declared and counted apart);
 * - unexpected: receipts the filter does not take; foreign: ids not of this run;
 * - publish-to-delivery latency: receive time of a decision's first receipt minus the intended send
 *   time of its request in the open-loop schedule (coordinated omission corrected), for decisions
 *   due in the measured period.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as hdr from 'hdr-histogram-js';
import { latencyHistogram, recordMs, summaryOf } from './hdr.ts';
import type { SubscriberPlan } from './profile.ts';
import type { GeneratorReport, LatencySummary, RateWindow } from './protocol.ts';
import { FOREIGN, forEachReceipt } from './receipts.ts';

/** The schedule and acknowledgements of the generator(s). */
export interface Schedule {
  readonly idPrefix: string;
  readonly batch: number;
  readonly requestsTotal: number;
  readonly startMono: number;
  readonly intervalMs: number;
  readonly measureStartMono: number;
  readonly durationS: number;
  readonly windowS: number;
  /** 1 where request k was acknowledged. */
  readonly acked: Uint8Array;
}

/** The schedule of a generator report (`durationS`, `windowS` as the generator was told). */
export function scheduleOf(
  report: GeneratorReport,
  o: {
    readonly idPrefix: string;
    readonly batch: number;
    readonly durationS: number;
    readonly windowS: number;
  },
): Schedule {
  const acked = new Uint8Array(report.requestsTotal);
  for (const k of report.ackedRequests) acked[k] = 1;
  return {
    ...o,
    requestsTotal: report.requestsTotal,
    startMono: report.startMono,
    intervalMs: report.intervalMs,
    measureStartMono: report.measureStartMono,
    acked,
  };
}

/** One subscriber's figures. */
export interface SubscriberFigures {
  readonly index: number;
  readonly label: string;
  readonly transport: 'grpc' | 'ws';
  readonly expected: number;
  readonly received: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly redeliveries: number;
  readonly unexpected: number;
  readonly p99Ms: number | null;
}

/** What the join found. */
export interface JoinResult {
  readonly expected: number;
  /** Expected pairs received at least once. */
  readonly received: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly redeliveries: number;
  readonly unexpected: number;
  readonly foreign: number;
  /** Distinct receipts of decisions whose publish was not acknowledged (an error or no answer). */
  readonly receivedUnacknowledged: number;
  readonly receipts: number;
  /** Up to 20 lost pairs, for diagnosis. */
  readonly lostSamples: readonly { readonly subscription: string; readonly decisionId: string }[];
  readonly publishToDeliver: hdr.Histogram;
  readonly byTransport: Readonly<Record<'grpc' | 'ws', hdr.Histogram>>;
  /** First receipts of decisions due in the measured period, and when the last of them arrived. */
  readonly measuredDeliveries: number;
  readonly lastMeasuredReceiptMono: number;
  /** Deliveries (first receipts) per second of receive time from the origin (the measured period's start). */
  readonly deliveredPerSecond: number[];
  /** Per window: deliveries due (of decisions due in it) and received in it. */
  readonly windows: readonly RateWindow[];
  readonly perSubscriber: readonly SubscriberFigures[];
}

/** Joins the receipts in `runDir` with the schedule; `matches[t]` lists the subscribers template t goes to. */
export function joinReceipts(
  runDir: string,
  plans: readonly SubscriberPlan[],
  matches: readonly Uint32Array[],
  s: Schedule,
  opts: {
    /** Seconds of deliveredPerSecond after the measured period. */
    readonly tailS?: number;
    /** Where deliveredPerSecond starts (shared monotonic ms); default the measured period's start. */
    readonly originMono?: number;
    /** Seconds of deliveredPerSecond always kept (trailing zeros beyond are dropped); default the duration. */
    readonly keepS?: number;
  } = {},
): JoinResult {
  const tailS = opts.tailS ?? 60;
  const originMono = opts.originMono ?? s.measureStartMono;
  const T = matches.length;
  const N = s.requestsTotal * s.batch;
  const measureEndMono = s.measureStartMono + s.durationS * 1000;
  const windowMs = s.windowS * 1000;
  const nWindows = Math.ceil((s.durationS * 1000) / windowMs);
  const dueInWindow = new Array<number>(nWindows).fill(0);
  const gotInWindow = new Array<number>(nWindows).fill(0);
  const perSecond = new Array<number>(Math.ceil(s.durationS) + tailS).fill(0);
  const intended = (n: number) => s.startMono + Math.floor(n / s.batch) * s.intervalMs;
  const isAcked = (n: number) => s.acked[Math.floor(n / s.batch)] === 1;

  // Per subscriber, the templates it takes.
  const templatesOf: number[][] = plans.map(() => []);
  for (let t = 0; t < T; t++) for (const i of matches[t]!) templatesOf[i]!.push(t);

  const all = latencyHistogram();
  const byTransport = { grpc: latencyHistogram(), ws: latencyHistogram() };
  const mine = latencyHistogram();
  const seen = new Uint8Array(N);
  const takes = new Uint8Array(T);
  const tot = { expected: 0, received: 0, lost: 0, duplicates: 0, redeliveries: 0, unexpected: 0 };
  let foreign = 0;
  let receivedUnacknowledged = 0;
  let receipts = 0;
  let measuredDeliveries = 0;
  let lastMeasured = s.measureStartMono;
  const lostSamples: { subscription: string; decisionId: string }[] = [];
  const perSubscriber: SubscriberFigures[] = [];

  for (const plan of plans) {
    let data: Buffer;
    try {
      data = readFileSync(join(runDir, `sub-${plan.index}.bin`));
    } catch {
      data = Buffer.alloc(0);
    }
    mine.reset();
    takes.fill(0);
    for (const t of templatesOf[plan.index]!) takes[t] = 1;
    const f = { expected: 0, received: 0, lost: 0, duplicates: 0, redeliveries: 0, unexpected: 0 };
    forEachReceipt(data, (r) => {
      receipts++;
      if (r.n === FOREIGN || r.n >= N || r.revision !== 1) {
        foreign++;
        return;
      }
      if (seen[r.n] === 1) {
        if (r.deliveryCount > 1) f.redeliveries++;
        else f.duplicates++;
        return;
      }
      seen[r.n] = 1;
      if (takes[r.n % T] !== 1) {
        f.unexpected++;
        return;
      }
      if (!isAcked(r.n)) receivedUnacknowledged++;
      const due = intended(r.n);
      if (due >= s.measureStartMono && due < measureEndMono) {
        const ms = r.recvMono - due;
        recordMs(mine, ms); // added to the totals once per subscriber
        measuredDeliveries++;
        if (r.recvMono > lastMeasured) lastMeasured = r.recvMono;
      }
      const w = Math.floor((r.recvMono - s.measureStartMono) / windowMs);
      if (w >= 0 && w < nWindows) gotInWindow[w]!++;
      const sec = Math.floor((r.recvMono - originMono) / 1000);
      if (sec >= 0 && sec < perSecond.length) perSecond[sec]!++;
    });
    for (const t of templatesOf[plan.index]!) {
      for (let n = t; n < N; n += T) {
        if (!isAcked(n)) continue;
        f.expected++;
        const due = intended(n);
        if (due >= s.measureStartMono && due < measureEndMono)
          dueInWindow[Math.floor((due - s.measureStartMono) / windowMs)]!++;
        if (seen[n] === 1) f.received++;
        else {
          f.lost++;
          if (lostSamples.length < 20)
            lostSamples.push({ subscription: plan.name, decisionId: `${s.idPrefix}-${n}` });
        }
      }
    }
    forEachReceipt(data, (r) => {
      if (r.n < N) seen[r.n] = 0;
    });
    for (const k of Object.keys(tot) as (keyof typeof tot)[]) tot[k] += f[k];
    all.add(mine);
    byTransport[plan.transport].add(mine);
    perSubscriber.push({
      index: plan.index,
      label: plan.label,
      transport: plan.transport,
      ...f,
      p99Ms: mine.totalCount === 0 ? null : mine.getValueAtPercentile(99) / 1000,
    });
  }

  const windows: RateWindow[] = dueInWindow.map((offered, w) => {
    const lenS = Math.min(s.windowS, s.durationS - w * s.windowS);
    const got = gotInWindow[w]!;
    const r = (x: number) => Math.round(x * 10) / 10;
    return {
      startS: w * s.windowS,
      offered,
      acknowledged: got,
      offeredRate: r(offered / lenS),
      achievedRate: r(got / lenS),
      ratio: offered === 0 ? 0 : Math.round((got / offered) * 10_000) / 10_000,
    };
  });
  const keep = opts.keepS ?? Math.ceil(s.durationS);
  while (perSecond.length > keep && perSecond[perSecond.length - 1] === 0) perSecond.pop();
  return {
    ...tot,
    foreign,
    receivedUnacknowledged,
    receipts,
    lostSamples,
    publishToDeliver: all,
    byTransport,
    measuredDeliveries,
    lastMeasuredReceiptMono: lastMeasured,
    deliveredPerSecond: perSecond,
    windows,
    perSubscriber,
  };
}

/** The summary of a histogram, or null when it holds nothing. */
export function summaryOrNull(h: hdr.Histogram): LatencySummary | null {
  return h.totalCount === 0 ? null : summaryOf(h);
}
