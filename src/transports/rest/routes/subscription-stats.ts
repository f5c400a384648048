/** Health of one subscription (subscriptions issue item 6): GET /v1/subscriptions/{name}/stats. */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { CdsError } from '../../../errors/index.ts';
import { callerOf } from '../caller.ts';

/** Registers /v1/subscriptions/:name/stats (scope: subscribe on each of its topic patterns, or admin). */
export function registerSubscriptionStatsRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { name: string } }>('/v1/subscriptions/:name/stats', async (req) => {
    await ctx.subscriptions.get(req.params.name, callerOf(req)); // NOT_FOUND, FORBIDDEN
    const stats = await ctx.deliveries.stats(req.params.name);
    if (stats === undefined)
      throw new CdsError('NOT_FOUND', `subscription '${req.params.name}' is not running on this instance`);
    return stats;
  });
}
