/**
 * Replay: publish --count decisions (the fanout profile's bodies) at --rate, then --subscribers new
 * subscriptions without a filter start from `earliest` at once, in their own processes (gRPC
 * Sessions and WebSocket alternating), and read everything. The replay rate is deliveries received
 * per second from the first subscriber's connect to the last receipt; each subscriber's own rate is
 * kept too. Lost and duplicated come from the receipts against the publish acknowledgements.
 * CPU and memory are measured over the replay phase (the generator's own CPU of the publish phase
 * is in details).
 */
import { fleetOf } from '../lib/delivery.ts';
import { createSubscriptions, deleteSubscriptions } from '../lib/fleet.ts';
import { joinReceipts, scheduleOf } from '../lib/join.ts';
import {
  buildTemplates,
  DEFAULT_PROFILE,
  loadProfile,
  matchTable,
  planAllSubscribers,
} from '../lib/profile.ts';
import { cpuBetween } from '../lib/proc.ts';
import type { SubscriberStats } from '../lib/subscriber.ts';
import {
  achievedRateOf,
  COMMON_DEFAULTS,
  runGenerators,
  type RunContext,
  type Workload,
} from '../lib/workload.ts';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]!;
}

/** The replay workload. */
export const replay: Workload = {
  name: 'replay',
  description: 'publish --count decisions, then --subscribers subscriptions replay them from earliest',
  defaults: {
    ...COMMON_DEFAULTS,
    rate: 20_000,
    count: 200_000,
    warmupS: 0,
    batch: 500,
    connections: 8,
    subscribers: 1,
    subscriberProcesses: 4,
    grpcShare: 0.5,
    drainS: 120,
  },
  async run(ctx: RunContext) {
    const o = ctx.opts;
    const profileFile = o.profile ?? DEFAULT_PROFILE;
    const profile = loadProfile(profileFile);
    const templates = buildTemplates(profile);
    const idPrefix = `bench-${ctx.runId}`;
    const durationS = o.count / o.rate;

    // Phase 1: publish.
    const report = await runGenerators(
      {
        url: ctx.url,
        key: ctx.key,
        rate: o.rate,
        batch: o.batch,
        connections: o.connections,
        durationS,
        warmupS: 0,
        idPrefix,
        seed: o.seed,
        portfolios: o.portfolios,
        drainTimeoutMs: 30_000,
        windowS: o.windowS,
        source: { kind: 'profile', file: profileFile },
      },
      o.generators,
      ctx,
    );

    // Phase 2: replay from earliest.
    const plans = planAllSubscribers(o.subscribers, idPrefix, o.grpcShare ?? 0.5);
    const matches = matchTable(templates, plans);
    await createSubscriptions(ctx.url, ctx.key, plans, profile.subscription, 'earliest');
    ctx.meter.start();
    const fleet = fleetOf(ctx, idPrefix, profile.credits, plans);
    let stats: SubscriberStats[] | undefined;
    try {
      await fleet.ready(30_000 + 30 * plans.length);
      const expected = report.ackedRequests.length * o.batch * plans.length;
      const drain = await fleet.drain(expected, 10_000, o.drainS * 1000);
      ctx.meter.end();
      stats = await fleet.stop();

      const originMono = Math.min(...stats.map((s) => s.connectMono));
      const j = joinReceipts(
        ctx.runDir,
        plans,
        matches,
        scheduleOf(report, { idPrefix, batch: o.batch, durationS, windowS: o.windowS }),
        { originMono, tailS: o.drainS + 60, keepS: 0 },
      );
      const lastMono = Math.max(...stats.map((s) => s.lastReceiptMono ?? originMono));
      const replayS = (lastMono - originMono) / 1000;
      const perSubscriber = stats.map((s) => {
        const f = j.perSubscriber.find((p) => p.index === s.index)!;
        const ownS = ((s.lastReceiptMono ?? s.connectMono) - s.connectMono) / 1000;
        return {
          index: s.index,
          transport: f.transport,
          received: f.received,
          rate: ownS > 0 ? Math.round(f.received / ownS) : 0,
          firstDeliveryMs:
            s.firstReceiptMono === null ? null : Math.round(s.firstReceiptMono - s.connectMono),
        };
      });
      const rates = perSubscriber.map((p) => p.rate);
      const firsts = perSubscriber.flatMap((p) => (p.firstDeliveryMs === null ? [] : [p.firstDeliveryMs]));
      const replayRate = replayS > 0 ? Math.round((j.received / replayS) * 10) / 10 : 0;
      return {
        offeredRate: o.rate,
        achievedRate: achievedRateOf(report, durationS),
        deliveredRate: replayRate,
        subscribers: plans.length,
        windows: report.windows,
        deliveryWindows: null,
        deliveriesPerDecision: plans.length,
        latencyMs: {
          publishAck: report.publishAck,
          // Every decision was published before the replay began: its age at receipt is not a latency.
          publishToDeliver: null,
          sendLag: report.sendLag,
        },
        histograms: { publishAck: report.publishAckHistogram },
        lost: j.lost,
        duplicates: j.duplicates + report.duplicateAcks,
        duplicatesDetail: {
          delivered: j.duplicates,
          acknowledged: report.duplicateAcks,
          redeliveries: j.redeliveries,
        },
        errors: report.errors,
        measuredWallS: report.measuredWallS,
        // The generator has exited when the replay is measured: its CPU is that of the publish phase.
        cpu: { generator: cpuBetween({ userS: 0, systemS: 0 }, report.cpu, report.measuredWallS) },
        series: {
          offeredPerSecond: [],
          ackedPerSecond: [],
          deliveredPerSecond: j.deliveredPerSecond,
        },
        details: {
          profile: profileFile,
          idPrefix,
          replay: {
            decisions: report.decisionsAcked,
            subscribers: plans.length,
            seconds: Math.round(replayS * 1000) / 1000,
            rate: replayRate,
            perSubscriberRate: { min: Math.min(...rates), median: median(rates), max: Math.max(...rates) },
            firstDeliveryMs: { min: Math.min(...firsts), max: Math.max(...firsts) },
            perSubscriber: perSubscriber.slice(0, 50),
          },
          publishPhase: {
            seconds: Math.round(report.measuredWallS * 1000) / 1000,
            offeredPerSecond: report.offeredPerSecond,
            ackedPerSecond: report.ackedPerSecond,
          },
          deliveries: {
            expected: j.expected,
            received: j.received,
            lost: j.lost,
            duplicates: j.duplicates,
            redeliveries: j.redeliveries,
            unexpected: j.unexpected,
            foreign: j.foreign,
            receipts: j.receipts,
            lostSamples: j.lostSamples,
          },
          subscriberClients: {
            gaps: stats.reduce((a, s) => a + s.gaps, 0),
            errors: stats.reduce((a, s) => a + s.errors, 0),
            errorMessages: stats.flatMap((s) => s.errorMessages).slice(0, 10),
          },
          timingsMs: { drain: drain.ms },
          drainEndedBy: drain.endedBy,
        },
      };
    } finally {
      if (stats === undefined) fleet.kill();
      if (!ctx.ownService) await deleteSubscriptions(ctx.url, ctx.key, plans).catch(() => undefined);
    }
  },
};
