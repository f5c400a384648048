/**
 * SubscriptionService (ADR 0012): Subscribe (a server stream acknowledged on write), Session (the
 * bidirectional consumer: subscribe with resume, acks, nacks, credits, live changes, heartbeats)
 * and the management RPCs. Errors about one Session message answer that message alone.
 */
import type { ServerDuplexStream, ServerWritableStream } from '@grpc/grpc-js';
import type { AppContext } from '../../app-context.ts';
import type { AckResult as EngineAck, ConsumerHandle } from '../../delivery/index.ts';
import { CdsError, isCdsError } from '../../errors/index.ts';
import type { AuthContext } from '../../security/index.ts';
import { admit, isMalformed, malformedError, StreamCounters, unary } from './call.ts';
import { fieldError, toServiceError, toStreamError } from './errors.ts';
import { encodeDeliveries, positionOf } from './frames.ts';
import type { AckResult } from './gen/cds/v1/subscriptions.ts';
import type {
  SessionRequest,
  SessionResponse,
  SubscribeRequest,
  SubscribeResponse,
  SubscriptionServiceServer,
} from './gen/cds/v1/subscriptions.ts';
import type { StreamRegistry } from './streams.ts';

/** Deliveries written and not yet drained on a Subscribe stream, by default. */
const DEFAULT_WINDOW = 1000;

function json(bytes: Uint8Array, path: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new CdsError('MALFORMED_JSON', `${path} is not valid JSON: ${(e as Error).message}`, {
      details: { errors: [{ path, code: 'malformed_json', message: (e as Error).message }] },
    });
  }
}

const viewBytes = (v: unknown) => ({ json: Buffer.from(JSON.stringify(v)) });

function ackProto(r: EngineAck): AckResult {
  return r.ok
    ? { position: r.position, ok: true, count: r.count ?? 0, code: '', message: '' }
    : { position: r.position, ok: false, count: 0, code: r.code, message: r.message };
}

/** The SubscriptionService implementation. */
export function subscriptionService(
  ctx: AppContext,
  streams: StreamRegistry,
  heartbeatMs: number,
): SubscriptionServiceServer {
  const svc = ctx.subscriptions;

  /** Common stream plumbing: registration for shutdown, heartbeats, ending once. */
  function stream(call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>) {
    const stats = new StreamCounters();
    const s = {
      stats,
      ended: false,
      consumer: undefined as ConsumerHandle | undefined,
      credits: 0,
      heartbeat: (_: number) => undefined as unknown,
      end(e?: unknown) {
        if (s.ended) return;
        s.ended = true;
        cleanup();
        if (e === undefined) call.end();
        else call.emit('error', toServiceError(e));
      },
    };
    const hb = setInterval(() => s.heartbeat(Date.now()), heartbeatMs);
    hb.unref();
    const unregister = streams.add((e) => s.end(e));
    const cleanup = () => {
      clearInterval(hb);
      unregister();
      s.consumer?.detach();
      s.consumer = undefined;
    };
    call.on('cancelled', () => {
      s.ended = true;
      cleanup();
    });
    call.on('error', () => undefined);
    return s;
  }

  function subscribe(call: ServerWritableStream<SubscribeRequest, SubscribeResponse>): void {
    const s = stream(call as never);
    const write = (m: SubscribeResponse | Buffer) => {
      if (s.ended) return true;
      s.stats.messagesOut++;
      return call.write(m as SubscribeResponse);
    };
    s.heartbeat = (at) => write({ heartbeat: { atMs: at, stats: s.stats.snapshot(s.credits) } });
    const run = async () => {
      const caller = await admit(ctx, call.metadata, 'Subscribe');
      const req = call.request;
      if (isMalformed(req)) throw malformedError(req, 'Subscribe request');
      const window = req.window === 0 ? DEFAULT_WINDOW : req.window;
      const name = req.subscription;
      let owed = 0;
      const handle = await svc.attach(
        name,
        caller,
        {
          send: (d) => {
            s.credits -= d.length;
            s.stats.itemsOut += d.length;
            const flowing = write(encodeDeliveries(1, name, d));
            s.consumer?.ack(d.map(positionOf));
            if (flowing) setImmediate(() => grant(d.length));
            else owed += d.length;
          },
          close: (code, message) => s.end(new CdsError(code, message)),
        },
        0,
      );
      if (s.ended) return handle.detach();
      s.consumer = handle;
      const grant = (n: number) => {
        if (s.ended || n === 0) return;
        s.credits += n;
        s.consumer?.credit(n);
      };
      call.on('drain', () => {
        const n = owed;
        owed = 0;
        grant(n);
      });
      grant(window);
    };
    run().catch((e: unknown) => s.end(e));
  }

  function session(call: ServerDuplexStream<SessionRequest, SessionResponse>): void {
    const s = stream(call as never);
    let subscribing = false;
    const write = (m: SessionResponse | Buffer) => {
      if (s.ended) return;
      s.stats.messagesOut++;
      call.write(m as SessionResponse);
    };
    s.heartbeat = (at) => write({ id: 0, heartbeat: { atMs: at, stats: s.stats.snapshot(s.credits) } });
    const fail = (id: number, e: unknown) => {
      s.stats.errors++;
      write({ id, error: toStreamError(e) });
    };

    async function handle(m: SessionRequest, caller: AuthContext): Promise<void> {
      const id = m.id;
      if (m.heartbeat !== undefined)
        return void write({ id, heartbeat: { atMs: Date.now(), stats: s.stats.snapshot(s.credits) } });
      if (m.subscribe !== undefined) {
        const sub = m.subscribe;
        if (s.consumer !== undefined || subscribing)
          throw fieldError('subscribe', 'this session is already subscribed');
        if (sub.credits < 0) throw fieldError('subscribe.credits', 'a non-negative integer', 'range');
        const name = sub.subscription;
        subscribing = true;
        try {
          if (sub.resume.length > 0)
            await svc.seek(name, { to: json(sub.resume, 'subscribe.resume') }, caller, '/resume');
          const handle = await svc.attach(
            name,
            caller,
            {
              send: (d) => {
                s.credits -= d.length;
                s.stats.itemsOut += d.length;
                write(encodeDeliveries(3, name, d));
              },
              close: (code, message) => s.end(new CdsError(code, message)),
            },
            0,
          );
          if (s.ended) return handle.detach();
          s.consumer = handle;
        } catch (e) {
          // Another instance dispatches the subscription (cluster mode, ADR 0015): a session is one
          // subscription, so it ends with NOT_OWNER, whose details name where to connect.
          if (isCdsError(e, 'NOT_OWNER')) s.end(e);
          throw e;
        } finally {
          subscribing = false;
        }
        write({ id, subscribed: { subscription: name, consumer: s.consumer.id, epoch: ctx.log.epoch } });
        s.credits += sub.credits;
        s.consumer.credit(sub.credits);
        return;
      }
      const c = s.consumer;
      if (c === undefined) throw fieldError('subscribe', 'subscribe first', 'required');
      if (m.credits !== undefined) {
        const n = m.credits.n;
        if (!Number.isSafeInteger(n) || n < 0)
          throw fieldError('credits.n', 'a non-negative integer', 'range');
        s.credits += n;
        c.credit(n);
        return;
      }
      if (m.ack !== undefined) {
        s.stats.itemsIn += m.ack.positions.length;
        const results = m.ack.positions.length > 0 ? c.ack(m.ack.positions) : [];
        if (m.ack.upTo !== '') results.push(c.ackUpTo(m.ack.upTo));
        return void write({ id, ackResults: { results: results.map(ackProto), nack: false } });
      }
      if (m.nack !== undefined) {
        s.stats.itemsIn += m.nack.positions.length;
        const results = c.nack(m.nack.positions, m.nack.delayMs === 0 ? undefined : m.nack.delayMs);
        return void write({ id, ackResults: { results: results.map(ackProto), nack: true } });
      }
      if (m.update !== undefined) {
        const view = await svc.patch(c.subscription, json(m.update.patch, 'update.patch'), caller);
        return void write({ id, updated: { version: view.version } });
      }
      throw fieldError('kind', 'one of subscribe, ack, nack, credits, update, heartbeat', 'required');
    }

    admit(ctx, call.metadata, 'Session').then(
      (caller) => {
        call.on('data', (m: SessionRequest) => {
          s.stats.messagesIn++;
          if (isMalformed(m)) return fail(0, malformedError(m, 'SessionRequest'));
          handle(m, caller).catch((e: unknown) => fail(m.id, e));
        });
        call.on('end', () => s.end());
      },
      (e: unknown) => s.end(e),
    );
  }

  return {
    subscribe,
    session,
    createSubscription: unary(ctx, 'CreateSubscription', async (req, caller) => ({
      subscription: viewBytes(await svc.create(json(req.spec, 'spec'), caller)),
    })),
    getSubscription: unary(ctx, 'GetSubscription', async (req, caller) => ({
      subscription: viewBytes(await svc.get(req.name, caller)),
    })),
    listSubscriptions: unary(ctx, 'ListSubscriptions', async (_req, caller) => ({
      subscriptions: (await svc.list(caller)).map(viewBytes),
    })),
    updateSubscription: unary(ctx, 'UpdateSubscription', async (req, caller) => ({
      subscription: viewBytes(await svc.patch(req.name, json(req.patch, 'patch'), caller)),
    })),
    deleteSubscription: unary(ctx, 'DeleteSubscription', async (req, caller) => {
      await svc.remove(req.name, caller);
      return {};
    }),
  };
}
