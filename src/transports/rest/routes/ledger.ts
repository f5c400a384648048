/** The delivery ledger (DESIGN 5; ADR 0011): GET /v1/decisions/{decisionId}/deliveries. */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { namedDecision } from '../decision-ref.ts';

/** Registers the ledger route (scope: subscribe on one of the decision's topics, or admin). */
export function registerLedgerRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { decisionId: string }; Querystring: Record<string, unknown> }>(
    '/v1/decisions/:decisionId/deliveries',
    async (req) => {
      const found = await namedDecision(ctx, req, ['explain']);
      const explain = found.flags['explain'] === true;
      return ctx.ledger.deliveries(found.stored, explain);
    },
  );
}
