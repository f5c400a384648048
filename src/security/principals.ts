/**
 * Managing principals and API keys: create (the key is returned once), list, revoke, and the
 * first-start bootstrap of an admin key. Every change is audited.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CdsError, validationError, type FieldError } from '../errors/index.ts';
import type { Principal, PrincipalStore, RateLimits, MetaStore } from '../state/index.ts';
import type { AuditTrail } from './audit.ts';
import type { Authenticator } from './authenticator.ts';
import { generateApiKey, hashApiKey, keyDisplayPrefix, newPrincipalId } from './keys.ts';
import { scopeErrors } from './scopes.ts';

/** What a caller sends to create a key. */
export interface NewKeyRequest {
  name: string;
  scopes: string[];
  rateLimits?: RateLimits;
}

/** A principal as listed (never with its key hash). */
export type PrincipalView = Omit<Principal, 'keyHash'>;

/** The public view of a principal. */
export function viewOf(p: Principal): PrincipalView {
  const { keyHash: _hidden, ...rest } = p;
  return rest;
}

/** Validates a key request; throws VALIDATION_FAILED listing every problem. */
export function checkNewKey(body: unknown): NewKeyRequest {
  const errors: FieldError[] = [];
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw validationError('body must be a JSON object', [
      { path: '', code: 'type', message: 'expected an object' },
    ]);
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (!['name', 'scopes', 'rateLimits'].includes(k))
      errors.push({ path: `/${k}`, code: 'unknown_field', message: `unknown field '${k}'` });
  }
  if (typeof b['name'] !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,99}$/.test(b['name'])) {
    errors.push({
      path: '/name',
      code: b['name'] === undefined ? 'required' : 'pattern',
      message: 'a name of 1-100 letters, digits, space . _ @ -',
    });
  }
  if (
    !Array.isArray(b['scopes']) ||
    b['scopes'].length === 0 ||
    b['scopes'].some((s) => typeof s !== 'string')
  ) {
    errors.push({
      path: '/scopes',
      code: b['scopes'] === undefined ? 'required' : 'type',
      message: 'a non-empty array of <action>:<pattern> strings',
    });
  } else {
    errors.push(...scopeErrors(b['scopes'] as string[], '/scopes'));
  }
  const rl = b['rateLimits'];
  if (rl !== undefined) {
    if (rl === null || typeof rl !== 'object' || Array.isArray(rl))
      errors.push({ path: '/rateLimits', code: 'type', message: 'expected an object' });
    else {
      for (const [k, v] of Object.entries(rl)) {
        if (k !== 'requestsPerSecond' && k !== 'decisionsPerSecond')
          errors.push({ path: `/rateLimits/${k}`, code: 'unknown_field', message: `unknown field '${k}'` });
        else if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v))
          errors.push({ path: `/rateLimits/${k}`, code: 'too_small', message: 'a positive number' });
      }
    }
  }
  if (errors.length > 0) throw validationError('invalid key request', errors);
  return b as unknown as NewKeyRequest;
}

/** Creates, lists and revokes API keys. */
export class PrincipalService {
  constructor(
    private readonly store: PrincipalStore,
    private readonly meta: MetaStore,
    private readonly audit: AuditTrail,
    private readonly auth: Authenticator,
  ) {}

  /** Creates a principal with a new key; the key is in the answer and nowhere else. */
  async create(
    actor: string,
    req: NewKeyRequest,
    key = generateApiKey(),
  ): Promise<{ key: string; principal: PrincipalView }> {
    const p: Principal = {
      id: newPrincipalId(),
      name: req.name,
      scopes: [...req.scopes],
      keyHash: hashApiKey(key),
      keyPrefix: keyDisplayPrefix(key),
      ...(req.rateLimits ? { rateLimits: req.rateLimits } : {}),
      createdAt: new Date().toISOString(),
    };
    await this.store.create(p);
    await this.audit.append({
      actor,
      action: 'principal.create',
      target: p.id,
      details: { name: p.name, scopes: p.scopes, keyPrefix: p.keyPrefix, rateLimits: p.rateLimits ?? null },
    });
    return { key, principal: viewOf(p) };
  }

  /** Every principal (without key hashes). */
  async list(): Promise<PrincipalView[]> {
    return (await this.store.list()).map(viewOf);
  }

  /** Revokes a principal's key; NOT_FOUND if unknown. */
  async revoke(actor: string, id: string): Promise<PrincipalView> {
    const p = await this.store.revoke(id, new Date().toISOString());
    if (p === undefined) throw new CdsError('NOT_FOUND', `no principal '${id}'`);
    this.auth.invalidate();
    await this.audit.append({
      actor,
      action: 'principal.revoke',
      target: id,
      details: { name: p.name, revokedAt: p.revokedAt ?? null },
    });
    return viewOf(p);
  }

  /**
   * Makes sure an administrator can get in: with `adminKey` configured, that key exists as an admin
   * principal; otherwise on the first start a key is generated, written to `<dataDir>/admin.key` (0600)
   * and returned so that the caller prints it once.
   */
  async bootstrap(
    dataDir: string,
    adminKey: string | undefined,
  ): Promise<{ generated?: string; file?: string }> {
    if (adminKey !== undefined) {
      const existing = await this.store.findByKeyHash(hashApiKey(adminKey));
      if (existing === undefined)
        await this.create('system', { name: 'admin (CDS_ADMIN_KEY)', scopes: ['admin:>'] }, adminKey);
      return {};
    }
    if ((await this.meta.get('bootstrap.adminKeyCreated')) !== undefined) return {};
    const { key } = await this.create('system', {
      name: 'admin (generated at first start)',
      scopes: ['admin:>'],
    });
    const file = join(dataDir, 'admin.key');
    await writeFile(file, `${key}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
    await this.meta.set('bootstrap.adminKeyCreated', new Date().toISOString());
    return { generated: key, file };
  }
}
