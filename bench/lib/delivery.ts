/**
 * One publish-and-deliver run, shared by the fanout, subscribers and latency workloads: the
 * profile's subscribers are created and started in their processes, the open-loop generator(s)
 * publish through REST, the subscribers drain, and the receipts are joined with the generator's
 * acknowledgements (bench/lib/join.ts).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { createSubscriptions, deleteSubscriptions, SubscriberFleet } from './fleet.ts';
import { encodeHistogram } from './hdr.ts';
import { joinReceipts, scheduleOf, summaryOrNull } from './join.ts';
import { buildTemplates, DEFAULT_PROFILE, loadProfile, matchTable, planSubscribers } from './profile.ts';
import type { SubscriberStats } from './subscriber.ts';
import { achievedRateOf, runGenerators, type RunContext, type WorkloadOutcome } from './workload.ts';

/**
 * The subscriber processes of a run: `plans` on the run's service (process p on instance p mod n of
 * several), metered as the run's processes.
 */
export function fleetOf(
  ctx: RunContext,
  idPrefix: string,
  credits: number,
  plans: ConstructorParameters<typeof SubscriberFleet>[0]['plans'],
): SubscriberFleet {
  return new SubscriberFleet({
    url: ctx.url,
    grpcAddress: ctx.grpcAddress,
    key: ctx.key,
    idPrefix,
    runDir: ctx.runDir,
    credits,
    plans,
    processes: ctx.opts.subscriberProcesses,
    ...(ctx.instances === undefined ? {} : { instances: ctx.instances }),
    onProcess: (name, pid) => ctx.meter.track(name, pid),
  });
}

/** Runs the profile's workload with `ctx.opts.subscribers` subscribers at `ctx.opts.rate`. */
export async function runDelivery(ctx: RunContext): Promise<WorkloadOutcome> {
  const o = ctx.opts;
  const profileFile = o.profile ?? DEFAULT_PROFILE;
  const profile = loadProfile(profileFile);
  const templates = buildTemplates(profile);
  const idPrefix = `bench-${ctx.runId}`;
  const plans = planSubscribers(
    profile,
    o.subscribers,
    idPrefix,
    o.grpcShare ?? profile.subscribers.grpcShare,
  );
  const matches = matchTable(templates, plans);
  let pairs = 0;
  for (const m of matches) pairs += m.length;
  const deliveriesPerDecision = pairs / matches.length;

  const t0 = performance.now();
  await createSubscriptions(ctx.url, ctx.key, plans, profile.subscription, 'latest');
  const createMs = performance.now() - t0;
  const fleet = fleetOf(ctx, idPrefix, profile.credits, plans);
  let stats: SubscriberStats[] | undefined;
  try {
    const t1 = performance.now();
    await fleet.ready(30_000 + 30 * plans.length);
    const subscribeMs = performance.now() - t1;

    const report = await runGenerators(
      {
        url: ctx.url,
        key: ctx.key,
        rate: o.rate,
        batch: o.batch,
        connections: o.connections,
        durationS: o.durationS,
        warmupS: o.warmupS,
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
    ctx.meter.end();

    const schedule = scheduleOf(report, {
      idPrefix,
      batch: o.batch,
      durationS: o.durationS,
      windowS: o.windowS,
    });
    let expected = 0;
    for (const k of report.ackedRequests)
      for (let n = k * o.batch; n < (k + 1) * o.batch; n++) expected += matches[n % matches.length]!.length;
    const drain = await fleet.drain(expected, Math.min(10_000, o.drainS * 1000), o.drainS * 1000);
    ctx.meter.sample();
    stats = await fleet.stop();

    const j = joinReceipts(ctx.runDir, plans, matches, schedule);
    let receiptBytes = 0;
    for (const p of plans) receiptBytes += statSync(join(ctx.runDir, `sub-${p.index}.bin`)).size;
    const measuredS = Math.max(o.durationS, (j.lastMeasuredReceiptMono - report.measureStartMono) / 1000);
    const sumStats = (f: (s: SubscriberStats) => number) => stats!.reduce((a, s) => a + f(s), 0);
    const worst = [...j.perSubscriber]
      .sort((a, b) => b.lost + b.duplicates - (a.lost + a.duplicates) || (b.p99Ms ?? 0) - (a.p99Ms ?? 0))
      .slice(0, 10);

    return {
      offeredRate: o.rate,
      achievedRate: achievedRateOf(report, o.durationS),
      deliveredRate: Math.round((j.measuredDeliveries / measuredS) * 10) / 10,
      subscribers: plans.length,
      windows: report.windows,
      deliveryWindows: j.windows,
      deliveriesPerDecision: Math.round(deliveriesPerDecision * 1000) / 1000,
      latencyMs: {
        publishAck: report.publishAck,
        publishToDeliver: summaryOrNull(j.publishToDeliver),
        publishToDeliverGrpc: summaryOrNull(j.byTransport.grpc),
        publishToDeliverWs: summaryOrNull(j.byTransport.ws),
        sendLag: report.sendLag,
      },
      histograms: {
        publishAck: report.publishAckHistogram,
        publishToDeliver: encodeHistogram(j.publishToDeliver),
      },
      lost: j.lost,
      duplicates: j.duplicates + report.duplicateAcks,
      duplicatesDetail: {
        delivered: j.duplicates,
        acknowledged: report.duplicateAcks,
        redeliveries: j.redeliveries,
      },
      errors: report.errors,
      measuredWallS: report.measuredWallS,
      series: {
        offeredPerSecond: report.offeredPerSecond,
        ackedPerSecond: report.ackedPerSecond,
        deliveredPerSecond: j.deliveredPerSecond,
      },
      details: {
        profile: profileFile,
        idPrefix,
        decisions: {
          scheduled: report.requestsTotal * o.batch,
          acknowledged: report.decisionsAcked,
          unanswered: report.unanswered * o.batch,
        },
        deliveries: {
          expected: j.expected,
          received: j.received,
          lost: j.lost,
          duplicates: j.duplicates,
          redeliveries: j.redeliveries,
          unexpected: j.unexpected,
          foreign: j.foreign,
          receivedUnacknowledged: j.receivedUnacknowledged,
          receipts: j.receipts,
          receiptBytes,
          lostSamples: j.lostSamples,
        },
        subscriberClients: {
          grpc: plans.filter((p) => p.transport === 'grpc').length,
          ws: plans.filter((p) => p.transport === 'ws').length,
          processes: Math.min(o.subscriberProcesses, plans.length),
          gaps: sumStats((s) => s.gaps),
          errors: sumStats((s) => s.errors),
          reconnects: sumStats((s) => s.reconnects),
          errorMessages: stats.flatMap((s) => s.errorMessages).slice(0, 10),
        },
        worstSubscribers: worst,
        timingsMs: {
          createSubscriptions: Math.round(createMs),
          subscribe: Math.round(subscribeMs),
          drain: drain.ms,
        },
        // Deliveries not received when the drain ended count as lost: `limit` means they were still
        // coming when --drain ran out, `idle` that none came for 10 s.
        drainEndedBy: drain.endedBy,
      },
    };
  } finally {
    if (stats === undefined) fleet.kill();
    if (!ctx.ownService) await deleteSubscriptions(ctx.url, ctx.key, plans).catch(() => undefined);
  }
}
