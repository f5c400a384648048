/**
 * Sustained durable ingest through the REST batch endpoint: batches of `--batch` decisions over
 * `--connections` keep-alive connections at `--rate` decisions/s, open loop. Afterwards the stored
 * decisions are counted by paging through the query: lost = acknowledged but not stored.
 */
import { countStored } from '../lib/verify.ts';
import {
  achievedRateOf,
  COMMON_DEFAULTS,
  runGenerators,
  type RunContext,
  type Workload,
} from '../lib/workload.ts';

/** The ingest workload. */
export const ingest: Workload = {
  name: 'ingest',
  description: 'durable publish through POST /v1/decisions in batches (rate in decisions/s)',
  defaults: { ...COMMON_DEFAULTS, rate: 20_000, durationS: 20, warmupS: 2, batch: 500, connections: 4 },
  async run(ctx: RunContext) {
    const o = ctx.opts;
    const idPrefix = `bench-${ctx.runId}`;
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
      },
      o.generators,
      ctx,
    );
    ctx.meter.end();

    let lost: number | null = null;
    let storedDuplicates: number | null = null;
    let verify: Record<string, unknown> = { method: 'none' };
    if (o.verify === 'full') {
      try {
        const stored = await countStored(ctx.url, ctx.key, idPrefix, report.decisionsSent);
        lost = 0;
        for (const k of report.ackedRequests) {
          for (let j = 0; j < o.batch; j++) if (stored.found[k * o.batch + j] !== 1) lost++;
        }
        storedDuplicates = stored.duplicates;
        verify = {
          method: 'query pagination',
          storedDistinct: stored.distinct,
          listed: stored.listed,
          // Stored but never acknowledged: unanswered at the drain timeout, or answered with an error.
          storedUnacknowledged: stored.distinct - (report.decisionsAcked - lost),
          pages: stored.pages,
          ms: stored.ms,
        };
      } catch (err) {
        // The load figures stand; lost stays unknown (null) and the result says why.
        verify = { method: 'query pagination', error: String((err as Error)?.message ?? err) };
        process.stderr.write(`verification failed: ${String(err)}\n`);
      }
    }

    return {
      offeredRate: o.rate,
      achievedRate: achievedRateOf(report, o.durationS),
      deliveredRate: null,
      subscribers: 0,
      windows: report.windows,
      deliveryWindows: null,
      deliveriesPerDecision: null,
      latencyMs: { publishAck: report.publishAck, publishToDeliver: null, sendLag: report.sendLag },
      histograms: { publishAck: report.publishAckHistogram },
      lost,
      duplicates: storedDuplicates === null ? null : report.duplicateAcks + storedDuplicates,
      duplicatesDetail: { acknowledged: report.duplicateAcks, stored: storedDuplicates },
      errors: report.errors,
      measuredWallS: report.measuredWallS,
      series: {
        offeredPerSecond: report.offeredPerSecond,
        ackedPerSecond: report.ackedPerSecond,
        deliveredPerSecond: null,
      },
      details: {
        requests: {
          sent: report.requestsSent,
          acknowledged: report.requestsAcked,
          unanswered: report.unanswered,
        },
        decisions: { sent: report.decisionsSent, acknowledged: report.decisionsAcked },
        verify,
      },
    };
  },
};
