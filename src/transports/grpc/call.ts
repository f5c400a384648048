/**
 * What every call goes through: tolerant decoding (a malformed message becomes INVALID_ARGUMENT
 * with a field violation instead of grpc-js' INTERNAL), the lifecycle checks, authentication from
 * metadata (`authorization: Bearer <key|JWT>` or `x-api-key`) with the REST scopes, the request rate
 * limit, audit of denials, and per-stream statistics.
 */
import { status as GrpcCode, type Metadata, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import type { AppContext } from '../../app-context.ts';
import { CdsError } from '../../errors/index.ts';
import { Authenticator, type AuthContext } from '../../security/index.ts';
import { toServiceError } from './errors.ts';
import type { StreamStats } from './gen/cds/v1/common.ts';

const MALFORMED = Symbol('malformed');

/** A request message that could not be decoded. */
export interface Malformed {
  readonly [MALFORMED]: Error;
}

/** Whether a decoded request is in fact a decoding failure. */
export function isMalformed(v: unknown): v is Malformed {
  return typeof v === 'object' && v !== null && MALFORMED in v;
}

/** The error answered for a message that is not valid protobuf of its type. */
export function malformedError(v: Malformed, what: string): CdsError {
  const reason = v[MALFORMED].message;
  return new CdsError('VALIDATION_FAILED', `the ${what} message is not valid protobuf: ${reason}`, {
    details: { errors: [{ path: '', code: 'malformed_protobuf', message: reason }] },
  });
}

type MethodDef = { requestDeserialize: (b: Buffer) => unknown };

/** A service definition whose request decoders return a Malformed marker instead of throwing. */
export function tolerant<S extends Record<string, MethodDef>>(service: S): S {
  const out: Record<string, MethodDef> = {};
  for (const [name, def] of Object.entries(service)) {
    const decode = def.requestDeserialize;
    out[name] = {
      ...def,
      requestDeserialize: (b: Buffer) => {
        try {
          return decode(b);
        } catch (e) {
          return { [MALFORMED]: e instanceof Error ? e : new Error(String(e)) };
        }
      },
    };
  }
  return out as S;
}

function header(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

/** Checks the lifecycle, authenticates the caller and takes the request rate limit. */
export async function admit(ctx: AppContext, md: Metadata, method: string): Promise<AuthContext> {
  if (ctx.lifecycle.draining)
    throw new CdsError('SHUTTING_DOWN', 'this instance is shutting down; retry on another or after restart', {
      retryAfterSeconds: 1,
    });
  if (!ctx.lifecycle.ready)
    throw new CdsError('NOT_READY', 'the instance is starting', { retryAfterSeconds: 1 });
  let principal: AuthContext;
  try {
    const credential = Authenticator.credential({
      authorization: header(md, 'authorization'),
      'x-api-key': header(md, 'x-api-key'),
    });
    principal = await ctx.auth.authenticate(credential);
  } catch (e) {
    const err =
      e instanceof CdsError ? e : new CdsError('UNAUTHENTICATED', 'authentication failed', { cause: e });
    ctx.audit.denied('anonymous', `gRPC ${method}`, err.code, err.message);
    ctx.metrics.denied.inc({ code: err.code });
    throw err;
  }
  const wait = ctx.limiter.request(principal.principalId, principal.rateLimits);
  if (wait > 0) {
    ctx.audit.rateLimited(principal.principalId, `gRPC ${method}`);
    ctx.metrics.denied.inc({ code: 'RATE_LIMITED' });
    throw new CdsError('RATE_LIMITED', `request rate limit of ${principal.name} exceeded`, {
      retryAfterSeconds: wait,
    });
  }
  return principal;
}

/** Records a FORBIDDEN answer in the audit trail, as the REST error hook does. */
export function auditForbidden(ctx: AppContext, principal: AuthContext, method: string, e: unknown): void {
  if (e instanceof CdsError && e.code === 'FORBIDDEN') {
    ctx.audit.denied(principal.principalId, `gRPC ${method}`, e.code, e.message);
    ctx.metrics.denied.inc({ code: e.code });
  }
}

/** Counters of one stream, sent in heartbeats. */
export class StreamCounters {
  readonly #opened = Date.now();
  messagesIn = 0;
  messagesOut = 0;
  itemsIn = 0;
  itemsOut = 0;
  errors = 0;

  /** The protobuf view, with the consumer's remaining credits where there is one. */
  snapshot(credits = 0): StreamStats {
    return {
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      itemsIn: this.itemsIn,
      itemsOut: this.itemsOut,
      errors: this.errors,
      ageMs: Date.now() - this.#opened,
      credits,
    };
  }
}

const DEADLINE = Symbol('deadline');

/** Whether the call's deadline has passed (or the client went away): nothing is done then. */
export function expired(call: { cancelled: boolean; getDeadline(): Date | number }): boolean {
  if (call.cancelled) return true;
  const d = call.getDeadline();
  const at = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(at) && at <= Date.now();
}

/** Runs a unary handler: admission, the call, errors as statuses. */
export function unary<Req, Res>(
  ctx: AppContext,
  method: string,
  fn: (req: Req, caller: AuthContext) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => void {
  return (call, cb) => {
    let caller: AuthContext | undefined;
    const run = async (): Promise<{ res: Res } | typeof DEADLINE> => {
      caller = await admit(ctx, call.metadata, method);
      if (isMalformed(call.request)) throw malformedError(call.request, `${method} request`);
      if (expired(call)) return DEADLINE;
      return { res: await fn(call.request, caller) };
    };
    run().then(
      (r) =>
        r === DEADLINE
          ? cb({ code: GrpcCode.DEADLINE_EXCEEDED, details: 'deadline exceeded' })
          : cb(null, r.res),
      (e: unknown) => {
        if (caller !== undefined) auditForbidden(ctx, caller, method, e);
        if (!(e instanceof CdsError)) ctx.logger.error({ err: e, method }, 'gRPC call failed');
        cb(toServiceError(e));
      },
    );
  };
}
