/** Operational endpoints: health, readiness, metrics, live status, schemas. */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { DecisionSchema } from '../../../domain/decision.ts';
import { CdsError } from '../../../errors/index.ts';
import { openApiDocument } from '../openapi.ts';
import { callerOf } from '../caller.ts';

/** Registers /healthz, /readyz, /metrics, /v1/status and the decision schema. */
export function registerOpsRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    if (ctx.lifecycle.draining)
      throw new CdsError('SHUTTING_DOWN', 'draining for shutdown', { retryAfterSeconds: 1 });
    if (!ctx.lifecycle.ready) throw new CdsError('NOT_READY', 'starting', { retryAfterSeconds: 1 });
    return reply.send({ ready: true });
  });

  app.get('/metrics', async (_req, reply) => {
    for (const e of ctx.log.extents())
      ctx.metrics.logNextOffset.set({ partition: String(e.partition) }, e.next);
    ctx.metrics.logBytes.set(ctx.log.storedBytes());
    ctx.metrics.indexBacklog.set(ctx.publisher.indexer.backlog);
    ctx.metrics.ready.set(ctx.lifecycle.ready && !ctx.lifecycle.draining ? 1 : 0);
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  app.get('/openapi.json', async () => openApiDocument());

  app.get('/v1/schemas/decision.json', async () => ({
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    ...DecisionSchema,
  }));

  app.get('/v1/status', async (req) => {
    callerOf(req);
    const counts = await ctx.state.decisions.counts();
    return {
      status: ctx.lifecycle.draining ? 'draining' : ctx.lifecycle.ready ? 'ready' : 'starting',
      startedAt: ctx.status.startedAt.toISOString(),
      uptimeSeconds: Math.round(process.uptime()),
      modes: { log: ctx.config.log.engine, state: ctx.config.state.engine },
      rates: ctx.status.rates(),
      totals: {
        ...ctx.publisher.counters,
        storedRevisions: counts.revisions,
        storedDecisions: counts.decisions,
      },
      log: {
        epoch: ctx.log.epoch,
        partitions: ctx.log.extents().map((e) => ({ partition: e.partition, first: e.first, next: e.next })),
        storedBytes: ctx.log.storedBytes(),
      },
      index: { backlog: ctx.publisher.indexer.backlog },
      subscriptions: ctx.deliveries.summary(),
    };
  });
}
