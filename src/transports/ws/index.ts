/**
 * The WebSocket transport at /v1/ws (DESIGN 7; ADR 0009), with the `ws` package on the HTTP server's
 * upgrade event. JSON text frames. Client ops: `subscribe`, `ack`, `ackUpTo`, `nack`, `credits`,
 * `update` (a live PATCH), `ping`; an ack or nack may name the `epoch` of its positions (another
 * epoch answers EPOCH_MISMATCH per position). Server frames: `subscribed`, `deliveries` (a batch), `ack`/`nack`
 * results, `updated`, `pong`, `heartbeat`, `notice` (retention removed unacknowledged records, ADR
 * 0017), `error`. A bad message gets an `error` frame, never a close.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AppContext } from '../../app-context.ts';
import type { AckResult, ConsumerHandle } from '../../delivery/index.ts';
import { CdsError, ERROR_CODES, isCdsError } from '../../errors/index.ts';
import { Authenticator, type AuthContext } from '../../security/index.ts';

const HEARTBEAT_MS = 15_000;
/** Client messages above this get a PAYLOAD_TOO_LARGE error frame (an ack of 10,000 positions is ~200 KB). */
const MAX_MESSAGE_BYTES = 1 << 20;
/** Frames above this close the connection (1009): `ws` would have to buffer them whole. */
const MAX_FRAME_BYTES = 16 << 20;

function errorFrame(e: unknown, ref: unknown): string {
  const err = isCdsError(e) ? e : new CdsError('INTERNAL', 'unexpected failure', { cause: e });
  return JSON.stringify({ type: 'error', ...(ref === undefined ? {} : { ref }), ...err.toJSON() });
}

function reject(socket: Duplex, status: number, e: CdsError): void {
  const body = JSON.stringify(e.toJSON());
  socket.end(
    `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Service Unavailable'}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Adds /v1/ws to the REST server. */
export function registerWebSocket(app: FastifyInstance, ctx: AppContext): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/v1/ws') return reject(socket, 404, new CdsError('ROUTE_NOT_FOUND', `no endpoint ${path}`));
    if (ctx.lifecycle.draining || !ctx.lifecycle.ready)
      return reject(
        socket,
        503,
        new CdsError('SHUTTING_DOWN', 'not accepting connections', { retryAfterSeconds: 1 }),
      );
    ctx.auth.authenticate(Authenticator.credential(req.headers)).then(
      (principal) => wss.handleUpgrade(req, socket, head, (ws) => session(ws, principal, ctx)),
      (e: unknown) => {
        const err = isCdsError(e) ? e : new CdsError('UNAUTHENTICATED', 'authentication failed');
        ctx.audit.denied('anonymous', 'GET /v1/ws', err.code, err.message);
        reject(socket, 401, err);
      },
    );
  });
  app.addHook('onClose', async () => {
    for (const ws of wss.clients) ws.close(ERROR_CODES.SHUTTING_DOWN.ws, 'shutting down');
    wss.close();
  });
}

function session(ws: WebSocket, principal: AuthContext, ctx: AppContext): void {
  let consumer: ConsumerHandle | undefined;
  let subscribing = false;
  let alive = true;
  const send = (s: string) => {
    if (ws.readyState === ws.OPEN) ws.send(s);
  };
  const hb = setInterval(() => {
    if (!alive) return ws.terminate();
    alive = false;
    ws.ping();
    send(`{"type":"heartbeat","at":"${new Date().toISOString()}"}`);
  }, HEARTBEAT_MS);
  hb.unref();
  ws.on('pong', () => (alive = true));
  ws.on('close', () => {
    clearInterval(hb);
    consumer?.detach();
  });
  ws.on('error', () => undefined);
  ws.on('message', (data, isBinary) => {
    alive = true;
    const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer).byteLength;
    if (size > MAX_MESSAGE_BYTES)
      return send(
        errorFrame(
          new CdsError('PAYLOAD_TOO_LARGE', `a message of ${size} bytes; at most ${MAX_MESSAGE_BYTES}`),
          undefined,
        ),
      );
    let msg: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data));
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      msg = v as Record<string, unknown>;
    } catch (e) {
      return send(
        errorFrame(new CdsError('MALFORMED_JSON', `not a JSON object: ${(e as Error).message}`), undefined),
      );
    }
    handle(msg).catch((e: unknown) => send(errorFrame(e, msg['id'])));
  });

  /** An ack or nack that names another epoch of the log (ADR 0014): each position is refused, nothing acked. */
  const otherEpoch = (m: Record<string, unknown>, positions: readonly unknown[]): AckResult[] | undefined => {
    const epoch = m['epoch'];
    if (epoch === undefined || epoch === ctx.log.epoch) return undefined;
    const message = `position of epoch ${String(epoch)}; the log is at epoch ${ctx.log.epoch} (restored or reset)`;
    return positions.map((p) => ({ position: String(p), ok: false, code: 'EPOCH_MISMATCH', message }));
  };

  const field = (path: string, message: string) =>
    new CdsError('VALIDATION_FAILED', message, { details: { errors: [{ path, code: 'invalid', message }] } });

  async function handle(m: Record<string, unknown>): Promise<void> {
    const id = m['id'];
    const ref = id === undefined ? {} : { id };
    switch (m['op']) {
      case 'subscribe': {
        if (consumer !== undefined || subscribing)
          throw field('/op', 'this connection is already subscribed');
        const name = m['subscription'];
        const credits = m['credits'] ?? 0;
        if (typeof name !== 'string') throw field('/subscription', 'the subscription name is required');
        if (typeof credits !== 'number' || !Number.isInteger(credits) || credits < 0)
          throw field('/credits', 'a non-negative integer');
        subscribing = true;
        try {
          consumer = await ctx.subscriptions.attach(
            name,
            principal,
            {
              send: (d) =>
                send(
                  `{"type":"deliveries","subscription":${JSON.stringify(name)},"deliveries":[${d.join(',')}]}`,
                ),
              notice: (n) => send(JSON.stringify({ ...n, type: 'notice', notice: n.type })),
              close: (code, message) => {
                consumer = undefined;
                ws.close(ERROR_CODES[code].ws, message.slice(0, 120));
              },
            },
            0,
          );
        } finally {
          subscribing = false;
        }
        send(
          JSON.stringify({
            type: 'subscribed',
            ...ref,
            subscription: name,
            consumer: consumer.id,
            epoch: ctx.log.epoch,
          }),
        );
        consumer.credit(credits);
        return;
      }
      case 'ping':
        return send(JSON.stringify({ type: 'pong', ...ref }));
    }
    const c = consumer;
    if (c === undefined) throw field('/op', 'subscribe first');
    switch (m['op']) {
      case 'credits': {
        const n = m['n'];
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 0)
          throw field('/n', 'a non-negative integer');
        c.credit(n);
        return;
      }
      case 'ack': {
        const p = m['positions'];
        if (!Array.isArray(p)) throw field('/positions', 'an array of positions');
        return send(JSON.stringify({ type: 'ack', ...ref, results: otherEpoch(m, p) ?? c.ack(p) }));
      }
      case 'ackUpTo':
        return send(
          JSON.stringify({
            type: 'ack',
            ...ref,
            results: otherEpoch(m, [m['position']]) ?? [c.ackUpTo(m['position'])],
          }),
        );
      case 'nack': {
        const p = m['positions'];
        const d = m['delayMs'];
        if (!Array.isArray(p)) throw field('/positions', 'an array of positions');
        if (d !== undefined && (typeof d !== 'number' || !Number.isInteger(d) || d < 0))
          throw field('/delayMs', 'a non-negative integer');
        return send(
          JSON.stringify({
            type: 'nack',
            ...ref,
            results: otherEpoch(m, p) ?? c.nack(p, d as number | undefined),
          }),
        );
      }
      case 'update': {
        const view = await ctx.subscriptions.patch(c.subscription, m['patch'], principal);
        return send(JSON.stringify({ type: 'updated', ...ref, version: view.version }));
      }
      default:
        throw field('/op', 'one of subscribe, ack, ackUpTo, nack, credits, update, ping');
    }
  }
}
