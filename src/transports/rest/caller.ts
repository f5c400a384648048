/** Who is calling: helpers for route handlers (kept apart from server.ts so routes do not import it). */
import type { FastifyRequest } from 'fastify';
import { CdsError } from '../../errors/index.ts';
import { isGlobalAdmin, type AuthContext } from '../../security/index.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller (set for every /v1 route). */
    principal?: AuthContext;
  }
}

/** The authenticated caller of a /v1 request. */
export function callerOf(req: FastifyRequest): AuthContext {
  if (req.principal === undefined) throw new CdsError('UNAUTHENTICATED', 'no credentials');
  return req.principal;
}

/** Throws FORBIDDEN unless the caller holds `admin:>`; the denial is audited by the error hook. */
export function requireGlobalAdmin(req: FastifyRequest): AuthContext {
  const p = callerOf(req);
  if (!isGlobalAdmin(p.grants)) throw new CdsError('FORBIDDEN', 'this endpoint needs the scope admin:>');
  return p;
}
