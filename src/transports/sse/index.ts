/**
 * The Server-Sent Events transport (DESIGN 7; ADR 0010): `GET /v1/subscriptions/{name}/events`.
 * Events: `subscribed` (consumer id, epoch, whether a session was resumed), `deliveries` (`id:` the last
 * position of the batch, `data:` the JSON array of deliveries as DESIGN 5 shapes them), `error` (the
 * stream ends), and heartbeat comments. Acks go through `POST /v1/subscriptions/{name}/ack`.
 */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../app-context.ts';
import { CdsError } from '../../errors/index.ts';
import { callerOf } from '../rest/caller.ts';
import { Session } from './session.ts';

/** Options of the SSE transport. */
export interface SseOptions {
  /** How long a session waits for its client to reconnect, in ms (default 30,000). */
  readonly resumeWindowMs?: number;
}

type Q = { Params: { name: string }; Querystring: Record<string, string | string[] | undefined> };

function intParam(q: Q['Querystring'], name: string, min: number, max: number, dflt: number): number {
  const v = q[name];
  if (v === undefined) return dflt;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new CdsError('INVALID_QUERY', `${name} must be an integer between ${min} and ${max}`, {
      details: {
        errors: [{ path: name, code: Array.isArray(v) ? 'repeated' : 'range', message: `${min} to ${max}` }],
      },
    });
  return n;
}

/** Adds the SSE endpoint to the REST server. */
export function registerSse(app: FastifyInstance, ctx: AppContext, opts: SseOptions = {}): void {
  const sessions = new Map<string, Set<Session>>();
  const resumeWindowMs = opts.resumeWindowMs ?? 30_000;

  app.get<Q>('/v1/subscriptions/:name/events', async (req, reply) => {
    const caller = callerOf(req);
    const name = req.params.name;
    for (const k of Object.keys(req.query))
      if (k !== 'credits' && k !== 'heartbeatMs')
        throw new CdsError('INVALID_QUERY', `unknown parameter ${k}`, {
          details: {
            errors: [{ path: k, code: 'unknown_parameter', message: 'credits and heartbeatMs only' }],
          },
        });
    const credits = intParam(req.query, 'credits', 1, 10_000, 256);
    const heartbeatMs = intParam(req.query, 'heartbeatMs', 200, 300_000, 15_000);
    const accept = req.headers.accept ?? '*/*';
    if (!/text\/event-stream|text\/\*|\*\/\*/.test(accept))
      throw new CdsError('NOT_ACCEPTABLE', 'this endpoint answers text/event-stream only');
    const h = req.headers['last-event-id'];
    const lastId = typeof h === 'string' && h.length > 0 && h.length < 200 ? h : undefined;

    const view = await ctx.subscriptions.get(name, caller); // scope check and NOT_FOUND first
    let set = sessions.get(name);
    let s: Session | undefined;
    if (lastId !== undefined && set !== undefined) {
      // The most recent session of this principal that sent that event id.
      for (const c of [...set].reverse())
        if (c.opts.principalId === caller.principalId && c.knows(lastId)) {
          s = c;
          break;
        }
    }
    const resumed = s !== undefined;
    if (s === undefined) {
      s = new Session({
        subscription: name,
        principalId: caller.principalId,
        credits,
        retain: Math.max(credits, view.maxInFlight),
        heartbeatMs,
        resumeWindowMs,
        onEnd: (x) => {
          const l = sessions.get(name);
          l?.delete(x);
          if (l?.size === 0) sessions.delete(name);
        },
      });
      s.handle = await ctx.subscriptions.attach(name, caller, s.sink, 0);
      if (set === undefined) sessions.set(name, (set = new Set()));
      set.add(s);
    }
    const session = s;
    reply.hijack();
    const res = reply.raw;
    req.raw.socket.setNoDelay(true);
    req.raw.socket.setKeepAlive(true, 30_000);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const hello = JSON.stringify({
      subscription: name,
      consumer: session.handle?.id ?? null,
      epoch: ctx.log.epoch,
      ackPolicy: view.ackPolicy,
      resumed,
    });
    session.connect(res, lastId, hello);
    if (!resumed) session.handle?.credit(credits);
  });

  app.addHook('onClose', async () => {
    for (const set of [...sessions.values()]) for (const s of [...set]) s.end();
  });
}
