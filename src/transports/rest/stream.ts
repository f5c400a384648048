/**
 * Streaming a long answer onto the raw HTTP response with real backpressure (ADR 0019): a chunk is
 * pulled from its source only after the previous one was accepted by the socket (or 'drain' came),
 * and the source is stopped as soon as the client goes away or the instance starts draining.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { AppContext } from '../../app-context.ts';
import { CdsError, isCdsError } from '../../errors/index.ts';

/** What a stream writes around and between the chunks of its source. */
export interface StreamShape {
  readonly status?: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Written before the first chunk. */
  readonly head?: string;
  /** Rewrites each chunk before it is written (the source's bytes are its own to change). */
  readonly map?: (bytes: Buffer, first: boolean) => Buffer;
  /** Written after the last chunk, when the source ended normally. */
  readonly tail?: () => string;
  /** Written when the source failed after the answer began: one line with the error body. */
  readonly errorLine?: (e: CdsError) => string;
}

/** Resolves true when the response can take more or has closed, false after `ms` without either. */
function writable(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      res.off('drain', onEvent);
      res.off('close', onEvent);
      resolve(ok);
    };
    const onEvent = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    res.on('drain', onEvent);
    res.on('close', onEvent);
  });
}

const shuttingDown = () =>
  new CdsError('SHUTTING_DOWN', 'this instance is shutting down; read the rest elsewhere', {
    retryAfterSeconds: 1,
  });

/**
 * Answers with the chunks of `source(signal)`. Everything that can be refused must be refused before
 * this is called (it takes the response over); a failure afterwards ends the answer with an error line.
 */
export async function streamAnswer(
  ctx: AppContext,
  req: FastifyRequest,
  reply: FastifyReply,
  shape: StreamShape,
  source: (signal: AbortSignal) => AsyncIterable<{ readonly bytes: Buffer }>,
): Promise<void> {
  const route = req.routeOptions.url ?? 'unknown';
  const abort = new AbortController();
  reply.hijack();
  const res = reply.raw;
  res.on('close', () => abort.abort());
  res.writeHead(shape.status ?? 200, { 'cache-control': 'no-store', ...shape.headers });
  ctx.metrics.httpRequests.inc({ route, status: String(shape.status ?? 200) });
  try {
    if (shape.head !== undefined) res.write(shape.head);
    let first = true;
    for await (const c of source(abort.signal)) {
      if (abort.signal.aborted) return; // the client went away: stop reading
      if (ctx.lifecycle.draining) throw shuttingDown();
      const bytes = shape.map === undefined ? c.bytes : shape.map(c.bytes, first);
      first = false;
      if (!res.write(bytes))
        while (!(await writable(res, 1000))) {
          // A client that stops reading must not hold a shutdown up: it loses the connection.
          if (ctx.lifecycle.draining) {
            res.destroy();
            return;
          }
        }
    }
    if (!abort.signal.aborted && shape.tail !== undefined) res.write(shape.tail());
  } catch (e) {
    const err = isCdsError(e) ? e : new CdsError('INTERNAL', 'internal error', { cause: e });
    if (err.code === 'INTERNAL') req.log.error({ err: e }, 'stream failed');
    if (!abort.signal.aborted) res.write(shape.errorLine?.(err) ?? `${JSON.stringify(err.toJSON())}\n`);
  } finally {
    if (!res.writableEnded) res.end();
  }
}
