export { Authenticator, type AuthContext } from './authenticator.ts';
export { JwtVerifier, type JwtOptions } from './jwt.ts';
export { RateLimiter, TokenBucket } from './rate-limit.ts';
export { AuditTrail, type AuditVerification } from './audit.ts';
export {
  PrincipalService,
  checkNewKey,
  viewOf,
  type PrincipalView,
  type NewKeyRequest,
} from './principals.ts';
export { allows, isGlobalAdmin, parseScopes, scopeErrors, type Action, type Grant } from './scopes.ts';
export { generateApiKey, hashApiKey } from './keys.ts';
