/** Subscription endpoints (DESIGN 5, 7; ADR 0009): CRUD, live update, lifecycle, seek, pull and ack, dead letters. */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { CdsError } from '../../../errors/index.ts';
import { callerOf } from '../caller.ts';

type P = { Params: { name: string } };

function int(v: unknown, path: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new CdsError('VALIDATION_FAILED', `${path} must be an integer between ${min} and ${max}`, {
      details: { errors: [{ path: `/${path}`, code: 'range', message: `between ${min} and ${max}` }] },
    });
  return v;
}

function positionsOf(body: unknown): unknown[] {
  const p = (body as Record<string, unknown> | undefined)?.['positions'];
  if (!Array.isArray(p) || p.length === 0 || p.length > 10_000)
    throw new CdsError('VALIDATION_FAILED', 'positions must be an array of 1 to 10,000 positions', {
      details: { errors: [{ path: '/positions', code: 'type', message: 'an array of positions' }] },
    });
  return p;
}

/** Registers /v1/subscriptions routes. */
export function registerSubscriptionRoutes(app: FastifyInstance, ctx: AppContext): void {
  const svc = ctx.subscriptions;
  app.post('/v1/subscriptions', async (req, reply) =>
    reply.code(201).send(await svc.create(req.body, callerOf(req))),
  );
  app.get('/v1/subscriptions', async (req) => ({ subscriptions: await svc.list(callerOf(req)) }));
  app.get<P>('/v1/subscriptions/:name', async (req) => svc.get(req.params.name, callerOf(req)));
  app.patch<P>('/v1/subscriptions/:name', async (req) => svc.patch(req.params.name, req.body, callerOf(req)));
  app.delete<P>('/v1/subscriptions/:name', async (req, reply) => {
    await svc.remove(req.params.name, callerOf(req));
    return reply.code(204).send();
  });
  app.post<P>('/v1/subscriptions/:name/pause', async (req) =>
    svc.setState(req.params.name, 'paused', callerOf(req)),
  );
  app.post<P>('/v1/subscriptions/:name/resume', async (req) =>
    svc.setState(req.params.name, 'active', callerOf(req)),
  );
  app.post<P>('/v1/subscriptions/:name/drain', async (req) =>
    svc.setState(req.params.name, 'draining', callerOf(req)),
  );
  app.post<P>('/v1/subscriptions/:name/seek', async (req) =>
    svc.seek(req.params.name, req.body, callerOf(req)),
  );
  app.post<P>('/v1/subscriptions/:name/skip', async (req) => {
    const pos = (req.body as Record<string, unknown> | undefined)?.['position'];
    if (typeof pos !== 'string')
      throw new CdsError('VALIDATION_FAILED', 'position is required', {
        details: { errors: [{ path: '/position', code: 'required', message: 'the held position' }] },
      });
    await svc.skip(req.params.name, pos, callerOf(req));
    return { skipped: pos };
  });
  app.post<P>('/v1/subscriptions/:name/fetch', async (req, reply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(b))
      if (k !== 'max' && k !== 'waitMs')
        throw new CdsError('VALIDATION_FAILED', `unknown field ${k}`, {
          details: { errors: [{ path: `/${k}`, code: 'unknown_field', message: 'max and waitMs only' }] },
        });
    const max = int(b['max'], 'max', 1, 10_000, 100);
    const waitMs = int(b['waitMs'], 'waitMs', 0, 30_000, 0);
    const got = await svc.fetch(req.params.name, callerOf(req), max, waitMs);
    // Each delivery is already encoded with the decision's stored JSON spliced in (DESIGN 9).
    return reply.type('application/json').send(`{"deliveries":[${got.join(',')}]}`);
  });
  app.post<P>('/v1/subscriptions/:name/ack', async (req) => ({
    results: await svc.ack(req.params.name, callerOf(req), positionsOf(req.body)),
  }));
  app.post<P>('/v1/subscriptions/:name/nack', async (req) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const delayMs = b['delayMs'] === undefined ? undefined : int(b['delayMs'], 'delayMs', 0, 86_400_000, 0);
    return { results: await svc.nack(req.params.name, callerOf(req), positionsOf(req.body), delayMs) };
  });
  app.get<P & { Querystring: { after?: string; limit?: string } }>(
    '/v1/subscriptions/:name/dead-letters',
    async (req) => {
      const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
        throw new CdsError('INVALID_QUERY', 'limit must be between 1 and 1000', {
          details: { errors: [{ path: 'limit', code: 'range', message: '1 to 1000' }] },
        });
      const letters = await svc.deadLetters(req.params.name, callerOf(req), {
        limit,
        ...(req.query.after === undefined ? {} : { after: req.query.after }),
      });
      return { deadLetters: letters };
    },
  );
  app.post<P>('/v1/subscriptions/:name/dead-letters/replay', async (req) => {
    const p = (req.body as Record<string, unknown> | undefined)?.['positions'];
    return {
      replayed: await svc.replayDeadLetters(
        req.params.name,
        callerOf(req),
        Array.isArray(p) ? p.map(String) : undefined,
      ),
    };
  });
  app.delete<P>('/v1/subscriptions/:name/dead-letters', async (req) => ({
    purged: await svc.purgeDeadLetters(req.params.name, callerOf(req)),
  }));
}
