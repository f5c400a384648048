/** Maps every failure a request can meet (ours, Fastify's, unexpected ones) to the error registry. */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { CdsError } from '../../errors/index.ts';

/** Converts Fastify's own errors (body parsing, limits, media types) to CdsErrors. */
export function toCdsError(err: unknown): CdsError {
  if (err instanceof CdsError) return err;
  const e = err as FastifyError & { statusCode?: number };
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new CdsError('UNSUPPORTED_MEDIA_TYPE', `unsupported Content-Type; send application/json`);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new CdsError('PAYLOAD_TOO_LARGE', 'request body is larger than http.bodyLimitBytes');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new CdsError('MALFORMED_JSON', 'the body is empty; a JSON value was expected', {
        details: { errors: [{ path: '', code: 'malformed_json', message: 'empty body' }] },
      });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new CdsError('MALFORMED_JSON', e.message);
    default:
      break;
  }
  if (e instanceof SyntaxError) {
    return new CdsError('MALFORMED_JSON', `the body is not valid JSON: ${e.message}`, {
      details: { errors: [{ path: '', code: 'malformed_json', message: e.message }] },
    });
  }
  if (e.statusCode === 413) return new CdsError('PAYLOAD_TOO_LARGE', e.message);
  if (e.statusCode === 415) return new CdsError('UNSUPPORTED_MEDIA_TYPE', e.message);
  if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
    return new CdsError('VALIDATION_FAILED', e.message, {
      details: { errors: [{ path: '', code: 'bad_request', message: e.message }] },
    });
  }
  return new CdsError('INTERNAL', 'internal error', { cause: err });
}

/** Sends a CdsError as the JSON body every endpoint uses, with Retry-After where it applies. */
export function sendError(reply: FastifyReply, err: CdsError): FastifyReply {
  if (
    err.retryAfterSeconds !== undefined ||
    err.code === 'RATE_LIMITED' ||
    err.code === 'SHUTTING_DOWN' ||
    err.code === 'STORAGE_UNAVAILABLE'
  ) {
    reply.header('retry-after', String(Math.max(1, Math.ceil(err.retryAfterSeconds ?? 1))));
  }
  return reply.code(err.spec.http).type('application/json').send(err.toJSON());
}

/** Fastify error handler: every error is answered in the registry's shape, internal ones logged. */
export function errorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const e = toCdsError(err);
  if (e.code === 'INTERNAL') req.log.error({ err }, 'unhandled error');
  return sendError(reply, e);
}
