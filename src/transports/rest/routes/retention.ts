/**
 * Retention policy endpoints (DESIGN 5, 7; ADR 0017): list, get, put (create or replace), delete.
 * Global admin only (a policy can remove any topic's records); every change is audited.
 */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { CdsError } from '../../../errors/index.ts';
import { requireGlobalAdmin } from '../caller.ts';

type P = { Params: { name: string }; Querystring: Record<string, unknown> };

/** Registers /v1/retention-policies routes. */
export function registerRetentionRoutes(app: FastifyInstance, ctx: AppContext): void {
  const svc = ctx.retention;
  app.get('/v1/retention-policies', async (req) => {
    requireGlobalAdmin(req);
    return svc.list();
  });
  app.get<P>('/v1/retention-policies/:name', async (req) => {
    requireGlobalAdmin(req);
    return svc.get(req.params.name);
  });
  app.put<P>('/v1/retention-policies/:name', async (req, reply) => {
    const caller = requireGlobalAdmin(req);
    const { policy, created } = await svc.put(req.params.name, req.body, caller);
    return reply.code(created ? 201 : 200).send(policy);
  });
  app.delete<P>('/v1/retention-policies/:name', async (req, reply) => {
    const caller = requireGlobalAdmin(req);
    let version: number | undefined;
    for (const [k, v] of Object.entries(req.query)) {
      if (k === 'version' && typeof v === 'string' && /^[1-9][0-9]{0,14}$/.test(v)) version = Number(v);
      else
        throw new CdsError('INVALID_QUERY', `unknown or bad parameter '${k}'`, {
          details: {
            errors: [
              {
                path: k,
                code: k === 'version' ? 'range' : 'unknown_parameter',
                message: 'only version (a positive integer) is accepted',
              },
            ],
          },
        });
    }
    await svc.remove(req.params.name, caller, version);
    return reply.code(204).send();
  });
}
