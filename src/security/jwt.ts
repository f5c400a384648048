/**
 * JWT verification with jose (DESIGN 8): HS256 with a shared secret, RS256 or EdDSA with a PEM public
 * key, or any of those through a local JWKS file. Scopes come from the `scope` claim, space-separated.
 */
import { readFileSync } from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { CdsError } from '../errors/index.ts';

/** Where JWT keys come from, and what claims are required. */
export interface JwtOptions {
  hs256SecretFile?: string;
  publicKeyFile?: string;
  jwksFile?: string;
  issuer?: string;
  audience?: string;
}

/** What a verified token says. */
export interface VerifiedJwt {
  readonly subject: string;
  readonly scopes: string[];
  readonly expiresAt?: number;
}

type Key =
  | { kind: 'secret'; key: Uint8Array }
  | { kind: 'public'; key: KeyObject; alg: string }
  | { kind: 'jwks'; get: JWTVerifyGetKey };

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new CdsError('CONFIG_INVALID', `${what}: cannot read ${file}: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/** Verifies bearer JWTs against the configured keys. */
export class JwtVerifier {
  private readonly keys: Key[] = [];

  constructor(private readonly opts: JwtOptions) {
    if (opts.hs256SecretFile) {
      const secret = read(opts.hs256SecretFile, 'security.jwtHs256SecretFile').toString('utf8').trim();
      if (secret.length < 32)
        throw new CdsError(
          'CONFIG_INVALID',
          'security.jwtHs256SecretFile: the secret must have at least 32 characters',
        );
      this.keys.push({ kind: 'secret', key: new TextEncoder().encode(secret) });
    }
    if (opts.publicKeyFile) {
      let key: KeyObject;
      try {
        key = createPublicKey(read(opts.publicKeyFile, 'security.jwtPublicKeyFile'));
      } catch (cause) {
        if (cause instanceof CdsError) throw cause;
        throw new CdsError(
          'CONFIG_INVALID',
          `security.jwtPublicKeyFile: not a PEM public key: ${(cause as Error).message}`,
          { cause },
        );
      }
      const alg =
        key.asymmetricKeyType === 'rsa' ? 'RS256' : key.asymmetricKeyType === 'ed25519' ? 'EdDSA' : undefined;
      if (alg === undefined)
        throw new CdsError(
          'CONFIG_INVALID',
          `security.jwtPublicKeyFile: key type ${key.asymmetricKeyType} is not RSA or Ed25519`,
        );
      this.keys.push({ kind: 'public', key, alg });
    }
    if (opts.jwksFile) {
      let jwks: unknown;
      try {
        jwks = JSON.parse(read(opts.jwksFile, 'security.jwtJwksFile').toString('utf8'));
      } catch (cause) {
        if (cause instanceof CdsError) throw cause;
        throw new CdsError('CONFIG_INVALID', `security.jwtJwksFile: not JSON: ${(cause as Error).message}`, {
          cause,
        });
      }
      this.keys.push({
        kind: 'jwks',
        get: createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]),
      });
    }
  }

  /** Whether any JWT key is configured. */
  get enabled(): boolean {
    return this.keys.length > 0;
  }

  /** Verifies a token; throws UNAUTHENTICATED with the reason when it is not acceptable. */
  async verify(token: string): Promise<VerifiedJwt> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (cause) {
      throw new CdsError('UNAUTHENTICATED', 'invalid token: its header is not a JWS header', { cause });
    }
    // Only keys of the token's algorithm are tried, so the reason given is about the right key.
    const candidates = this.keys.filter((k) =>
      k.kind === 'secret'
        ? alg === 'HS256'
        : k.kind === 'public'
          ? alg === k.alg
          : ['HS256', 'RS256', 'EdDSA'].includes(alg ?? ''),
    );
    if (candidates.length === 0)
      throw new CdsError(
        'UNAUTHENTICATED',
        `invalid token: algorithm ${alg ?? '(none)'} is not accepted here`,
      );
    let lastError: unknown;
    for (const k of candidates) {
      try {
        const common = {
          issuer: this.opts.issuer,
          audience: this.opts.audience,
          requiredClaims: ['sub', 'exp'],
        };
        const { payload } =
          k.kind === 'secret'
            ? await jwtVerify(token, k.key, { ...common, algorithms: ['HS256'] })
            : k.kind === 'public'
              ? await jwtVerify(token, k.key, { ...common, algorithms: [k.alg] })
              : await jwtVerify(token, k.get, { ...common, algorithms: ['HS256', 'RS256', 'EdDSA'] });
        return toVerified(payload);
      } catch (e) {
        lastError = e;
      }
    }
    throw new CdsError('UNAUTHENTICATED', `invalid token: ${(lastError as Error).message}`, {
      cause: lastError,
    });
  }
}

function toVerified(payload: JWTPayload): VerifiedJwt {
  const raw = payload['scope'];
  const scopes =
    typeof raw === 'string'
      ? raw.split(' ').filter((s) => s.length > 0)
      : Array.isArray(raw)
        ? raw.map(String)
        : [];
  return {
    subject: String(payload.sub),
    scopes,
    ...(payload.exp === undefined ? {} : { expiresAt: payload.exp }),
  };
}
