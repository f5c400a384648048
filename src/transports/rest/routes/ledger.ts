/** The delivery ledger (DESIGN 5; ADR 0011): GET /v1/decisions/{decisionId}/deliveries. */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { CdsError } from '../../../errors/index.ts';
import { allows, isGlobalAdmin } from '../../../security/index.ts';
import { callerOf } from '../caller.ts';

const ID = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

function badQuery(path: string, message: string): CdsError {
  return new CdsError('INVALID_QUERY', `${path}: ${message}`, {
    details: { errors: [{ path, code: 'invalid', message }] },
  });
}

/** Registers the ledger route (scope: subscribe on one of the decision's topics, or admin). */
export function registerLedgerRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { decisionId: string }; Querystring: Record<string, unknown> }>(
    '/v1/decisions/:decisionId/deliveries',
    async (req) => {
      const caller = callerOf(req);
      const { decisionId } = req.params;
      if (!ID.test(decisionId))
        throw new CdsError('VALIDATION_FAILED', 'decisionId is not a valid id', {
          details: { errors: [{ path: 'decisionId', code: 'pattern', message: 'not a valid id' }] },
        });
      let revision: number | undefined;
      let explain = false;
      for (const [k, v] of Object.entries(req.query)) {
        if (k === 'revision') {
          if (typeof v !== 'string' || !/^[1-9][0-9]{0,9}$/.test(v))
            throw badQuery('revision', 'a positive integer');
          revision = Number(v);
        } else if (k === 'explain') {
          if (v !== 'true' && v !== 'false') throw badQuery('explain', 'true or false');
          explain = v === 'true';
        } else throw badQuery(k, 'unknown parameter (revision and explain are accepted)');
      }
      const found = await ctx.publisher.get(decisionId, revision);
      if (found === undefined)
        throw new CdsError(
          'NOT_FOUND',
          revision === undefined
            ? `no decision '${decisionId}'`
            : `no revision ${revision} of decision '${decisionId}'`,
        );
      const topics = found.stored.topics;
      if (!isGlobalAdmin(caller.grants) && !topics.some((t) => allows(caller.grants, 'subscribe', t)))
        throw new CdsError('FORBIDDEN', `no subscribe scope for the topics of '${decisionId}'`);
      return ctx.ledger.deliveries(found.stored, explain);
    },
  );
}
