/** Administration endpoints: API keys (principals) and the audit trail. All need admin:>. */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { CdsError } from '../../../errors/index.ts';
import { checkNewKey } from '../../../security/index.ts';
import { requireGlobalAdmin } from '../caller.ts';

function intParam(q: Record<string, unknown>, name: string, min: number, max: number, dflt: number): number {
  const v = q[name];
  if (v === undefined) return dflt;
  if (typeof v === 'string' && /^\d{1,15}$/.test(v) && Number(v) >= min && Number(v) <= max) return Number(v);
  throw new CdsError('INVALID_QUERY', `${name} must be an integer from ${min} to ${max}`, {
    details: { errors: [{ path: name, code: 'range', message: `an integer from ${min} to ${max}` }] },
  });
}

function onlyParams(q: Record<string, unknown>, known: string[]): void {
  const bad = Object.keys(q).filter((k) => !known.includes(k));
  if (bad.length > 0) {
    throw new CdsError('INVALID_QUERY', `unknown parameters: ${bad.join(', ')}`, {
      details: {
        errors: bad.map((k) => ({
          path: k,
          code: 'unknown_parameter',
          message: `known: ${known.join(', ') || 'none'}`,
        })),
      },
    });
  }
}

/** Registers /v1/keys and /v1/audit. */
export function registerAdminRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.post('/v1/keys', async (req, reply) => {
    const caller = requireGlobalAdmin(req);
    const created = await ctx.principals.create(caller.principalId, checkNewKey(req.body));
    return reply.code(201).send(created);
  });

  app.get<{ Querystring: Record<string, unknown> }>('/v1/keys', async (req) => {
    requireGlobalAdmin(req);
    onlyParams(req.query, []);
    return { principals: await ctx.principals.list() };
  });

  app.delete<{ Params: { id: string } }>('/v1/keys/:id', async (req) => {
    const caller = requireGlobalAdmin(req);
    return { principal: await ctx.principals.revoke(caller.principalId, req.params.id) };
  });

  app.get<{ Querystring: Record<string, unknown> }>('/v1/audit', async (req) => {
    requireGlobalAdmin(req);
    onlyParams(req.query, ['after', 'limit']);
    const after = intParam(req.query, 'after', 0, Number.MAX_SAFE_INTEGER, 0);
    const limit = intParam(req.query, 'limit', 1, 1000, 100);
    const records = await ctx.state.audit.list(after, limit);
    const last = records[records.length - 1];
    return { records, next: records.length === limit && last ? last.seq : null };
  });

  app.get('/v1/audit/verify', async (req) => {
    requireGlobalAdmin(req);
    await ctx.audit.drain();
    return ctx.audit.verify();
  });
}
