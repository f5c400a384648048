/** Webhook endpoints of a subscription over REST (ADR 0010). */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../app-context.ts';
import { callerOf } from '../rest/caller.ts';

type P = { Params: { name: string } };
type PI = { Params: { name: string; id: string } };

/** Registers /v1/subscriptions/{name}/webhooks routes. */
export function registerWebhookRoutes(app: FastifyInstance, ctx: AppContext): void {
  const svc = ctx.webhooks;
  app.post<P>('/v1/subscriptions/:name/webhooks', async (req, reply) =>
    reply.code(201).send(await svc.create(req.params.name, req.body, callerOf(req))),
  );
  app.get<P>('/v1/subscriptions/:name/webhooks', async (req) => ({
    webhooks: await svc.list(req.params.name, callerOf(req)),
  }));
  app.get<PI>('/v1/subscriptions/:name/webhooks/:id', async (req) =>
    svc.get(req.params.name, req.params.id, callerOf(req)),
  );
  app.delete<PI>('/v1/subscriptions/:name/webhooks/:id', async (req, reply) => {
    await svc.remove(req.params.name, req.params.id, callerOf(req));
    return reply.code(204).send();
  });
  app.post<PI>('/v1/subscriptions/:name/webhooks/:id/enable', async (req) =>
    svc.enable(req.params.name, req.params.id, callerOf(req)),
  );
}
