/**
 * Backups of the running service (ADR 0014), admin:> only and audited: `POST /v1/admin/backups`
 * {"path": "/abs/dir"} starts one (202, its status), `GET /v1/admin/backups/{id}` follows it,
 * `GET /v1/admin/backups` lists the last ones. `cds backup --to DIR` calls them.
 */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { requireGlobalAdmin } from '../caller.ts';

/** Registers /v1/admin/backups. */
export function registerBackupRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.post('/v1/admin/backups', async (req, reply) => {
    const caller = requireGlobalAdmin(req);
    return reply.code(202).send(await ctx.backups.start(req.body, caller.principalId));
  });

  app.get('/v1/admin/backups', async (req) => {
    requireGlobalAdmin(req);
    return { backups: ctx.backups.list() };
  });

  app.get<{ Params: { id: string } }>('/v1/admin/backups/:id', async (req) => {
    requireGlobalAdmin(req);
    return ctx.backups.get(req.params.id);
  });
}
