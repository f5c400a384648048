/**
 * Turns request credentials into a principal: `Authorization: Bearer <api key | JWT>` or
 * `X-API-Key: <key>`. Known keys are cached for a few seconds so that the hot path does not touch the
 * store; a revocation through this instance takes effect at once, elsewhere within the cache time.
 */
import { CdsError } from '../errors/index.ts';
import type { PrincipalStore, RateLimits } from '../state/index.ts';
import { hashApiKey } from './keys.ts';
import type { JwtVerifier } from './jwt.ts';
import { parseScopes, type Grant } from './scopes.ts';

/** Who is calling, and what they may do. */
export interface AuthContext {
  readonly principalId: string;
  readonly name: string;
  readonly kind: 'apikey' | 'jwt';
  readonly grants: readonly Grant[];
  readonly rateLimits?: RateLimits;
}

const CACHE_MS = 5_000;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Authenticates requests against the principal store and the JWT keys. */
export class Authenticator {
  private readonly cache = new Map<string, { ctx: AuthContext; until: number }>();

  constructor(
    private readonly principals: PrincipalStore,
    private readonly jwt: JwtVerifier | undefined,
  ) {}

  /** The credential carried by headers, or undefined when there is none. */
  static credential(headers: Record<string, string | string[] | undefined>): string | undefined {
    const auth = headers['authorization'];
    if (typeof auth === 'string') {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (m) return m[1];
      return auth; // malformed: authenticate() refuses it with a precise message
    }
    const key = headers['x-api-key'];
    return typeof key === 'string' ? key : undefined;
  }

  /** The caller's context; throws UNAUTHENTICATED with the reason. */
  async authenticate(credential: string | undefined): Promise<AuthContext> {
    if (credential === undefined || credential.length === 0) {
      throw new CdsError(
        'UNAUTHENTICATED',
        'no credentials: send Authorization: Bearer <key or JWT> or X-API-Key: <key>',
      );
    }
    if (/\s/.test(credential))
      throw new CdsError('UNAUTHENTICATED', 'malformed Authorization header: expected Bearer <token>');
    const cached = this.cache.get(credential);
    if (cached !== undefined && cached.until > Date.now()) return cached.ctx;
    if (JWT_SHAPE.test(credential) && this.jwt?.enabled) {
      const v = await this.jwt.verify(credential);
      return { principalId: `jwt:${v.subject}`, name: v.subject, kind: 'jwt', grants: parseScopes(v.scopes) };
    }
    const p = await this.principals.findByKeyHash(hashApiKey(credential));
    if (p === undefined) throw new CdsError('UNAUTHENTICATED', 'unknown API key');
    if (p.revokedAt !== undefined)
      throw new CdsError('UNAUTHENTICATED', `API key ${p.keyPrefix}… was revoked at ${p.revokedAt}`);
    const ctx: AuthContext = {
      principalId: p.id,
      name: p.name,
      kind: 'apikey',
      grants: parseScopes(p.scopes),
      ...(p.rateLimits ? { rateLimits: p.rateLimits } : {}),
    };
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(credential, { ctx, until: Date.now() + CACHE_MS });
    return ctx;
  }

  /** Drops cached contexts (after a revocation or a scope change). */
  invalidate(): void {
    this.cache.clear();
  }
}
