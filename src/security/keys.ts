/** API keys: generated with 32 random bytes, shown once, stored only as their sha256. */
import { createHash, randomBytes } from 'node:crypto';

/** Prefix of every API key, so that leaked keys are recognisable by scanners. */
export const KEY_PREFIX = 'cds_';

/** A new random API key. */
export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** The stored form of a key. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** The part of a key shown in listings (never enough to authenticate). */
export function keyDisplayPrefix(key: string): string {
  return key.slice(0, KEY_PREFIX.length + 6);
}

/** A new principal id. */
export function newPrincipalId(): string {
  return `key_${randomBytes(9).toString('base64url')}`;
}
