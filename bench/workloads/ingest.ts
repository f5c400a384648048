/**
 * Sustained durable ingest through the REST batch endpoint: batches of `--batch` decisions over
 * `--connections` keep-alive connections at `--rate` decisions/s, open loop. Afterwards the stored
 * decisions are counted by paging through the query: lost = acknowledged but not stored.
 */
import { countStored } from '../lib/verify.ts';
import { cpuBetween } from '../lib/proc.ts';
import { runGenerator, type RunContext, type Workload, type WorkloadOutcome } from '../lib/workload.ts';

/** The ingest workload. */
export const ingest: Workload = {
  name: 'ingest',
  description: 'durable publish through POST /v1/decisions in batches (rate in decisions/s)',
  defaults: {
    rate: 20_000,
    durationS: 20,
    warmupS: 2,
    batch: 500,
    connections: 4,
    seed: 1,
    portfolios: 200,
    windowS: 5,
    verify: 'full',
  },
  async run(ctx: RunContext): Promise<WorkloadOutcome> {
    const o = ctx.opts;
    const idPrefix = `bench-${ctx.runId}`;
    const report = await runGenerator(
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
      ctx,
    );

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

    const measuredWallS = report.measuredWallS;
    return {
      offeredRate: o.rate,
      achievedRate:
        Math.round((report.measuredDecisionsAcked / Math.max(o.durationS, measuredWallS)) * 10) / 10,
      windows: report.windows,
      latencyMs: { publishAck: report.publishAck, sendLag: report.sendLag },
      lost,
      duplicates: { acknowledged: report.duplicateAcks, stored: storedDuplicates },
      errors: report.errors,
      generator: {
        cpu: cpuBetween({ userS: 0, systemS: 0 }, report.cpu, measuredWallS),
        peakRssMb: report.peakRssMb,
      },
      measuredWallS,
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
