/** Authentication, scopes, rate limits, keys, JWTs and the audit trail over REST. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { makeDecision } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

describe('REST security', () => {
  let t: TestApp;
  const secret = 'a-test-secret-of-at-least-32-characters-long';
  const keys = generateKeyPairSync('ed25519');
  const dir = mkdtempSync(join(tmpdir(), 'cds-jwt-'));
  const secretFile = join(dir, 'hs256.secret');
  const pemFile = join(dir, 'ed25519.pem');
  writeFileSync(secretFile, secret);
  writeFileSync(pemFile, keys.publicKey.export({ type: 'spki', format: 'pem' }));

  const createKey = async (name: string, scopes: string[], rateLimits?: object) => {
    const r = await t.request('POST', '/v1/keys', {
      body: { name, scopes, ...(rateLimits ? { rateLimits } : {}) },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body as { key: string; principal: { id: string } };
  };
  const audit = async () =>
    (await t.request('GET', '/v1/audit?limit=1000')).body.records as {
      action: string;
      actor: string;
      details: { code?: string; count?: number };
    }[];

  before(async () => {
    t = await startTestApp({
      security: {
        adminKey: 'cds_test-admin-key-0123456789abcdefghijklmnop',
        jwtHs256SecretFile: secretFile,
        jwtPublicKeyFile: pemFile,
        jwtIssuer: 'test-issuer',
      },
    });
  });
  after(() => t.close());

  it('answers 401 without credentials and with an unknown key, and audits both', async () => {
    const none = await t.request('POST', '/v1/decisions', { body: makeDecision(1), key: null });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'UNAUTHENTICATED');
    const wrong = await t.request('GET', '/v1/decisions/x', { key: 'cds_not-a-real-key' });
    assert.equal(wrong.status, 401);
    await t.app.ctx.audit.drain();
    const denied = (await audit()).filter(
      (r) => r.action === 'access.denied' && r.details.code === 'UNAUTHENTICATED',
    );
    assert.ok(denied.length >= 2);
  });

  it('answers 403 for a key without the scope, audits it, and accepts what the scope allows', async () => {
    const { key } = await createKey('fx-publisher', ['publish:decisions.fx.>']);
    const eq = await t.request('POST', '/v1/decisions', { body: makeDecision(10), key });
    assert.equal(eq.status, 403);
    assert.equal(eq.body.error.code, 'FORBIDDEN');
    const fx = makeDecision(11, { instrument: { symbol: 'EURUSD', assetClass: 'fx', currency: 'USD' } });
    assert.equal((await t.request('POST', '/v1/decisions', { body: fx, key })).status, 200);
    // Publishing does not grant reading, nor administration.
    assert.equal((await t.request('GET', '/v1/decisions/dec-000011', { key })).status, 403);
    assert.equal((await t.request('GET', '/v1/keys', { key })).status, 403);
    await t.app.ctx.audit.drain();
    assert.ok((await audit()).some((r) => r.action === 'access.denied' && r.details.code === 'FORBIDDEN'));
  });

  it('answers 429 with Retry-After over the request rate, and audits the denials with their count', async () => {
    // 0.5/s: one request, then a 2 s wait, so the test holds however slow the machine is.
    const { key, principal } = await createKey('slow', ['subscribe:>'], { requestsPerSecond: 0.5 });
    const codes: number[] = [];
    let retryAfter: unknown;
    for (let i = 0; i < 3; i++) {
      const r = await t.request('GET', '/v1/decisions/none', { key });
      codes.push(r.status);
      if (r.status === 429) retryAfter = r.headers['retry-after'];
    }
    assert.deepEqual(codes, [404, 429, 429]);
    assert.match(String(retryAfter), /^\d+$/);
    await t.app.ctx.audit.drain();
    const rec = (await audit()).find((r) => r.actor === principal.id && r.details.code === 'RATE_LIMITED');
    assert.ok(rec && (rec.details.count ?? 0) >= 1);
  });

  it('answers 429 over the decision rate', async () => {
    const { key } = await createKey('few-decisions', ['publish:>'], { decisionsPerSecond: 0.5 });
    const r = await t.request('POST', '/v1/decisions', {
      body: Array.from({ length: 10 }, (_, i) => makeDecision(900 + i)),
      key,
    });
    // A batch larger than the bucket waits for a full bucket: the first such batch goes, the next is refused.
    const r2 = await t.request('POST', '/v1/decisions', {
      body: Array.from({ length: 10 }, (_, i) => makeDecision(950 + i)),
      key,
    });
    assert.deepEqual([r.status, r2.status], [200, 429]);
    assert.equal(r2.body.error.retriable, true);
  });

  it('revokes a key: it stops working at once, and the change is audited', async () => {
    const { key, principal } = await createKey('temp', ['subscribe:>']);
    assert.equal((await t.request('GET', '/v1/decisions/none', { key })).status, 404);
    const del = await t.request('DELETE', `/v1/keys/${principal.id}`);
    assert.equal(del.status, 200);
    assert.ok(del.body.principal.revokedAt);
    assert.equal((await t.request('GET', '/v1/decisions/none', { key })).status, 401);
    const list = await t.request('GET', '/v1/keys');
    const listed = list.body.principals.find((p: { id: string }) => p.id === principal.id);
    assert.ok(listed.revokedAt);
    assert.equal(listed.keyHash, undefined, 'hashes are never listed');
    assert.ok((await audit()).some((r) => r.action === 'principal.revoke'));
  });

  it('refuses bad key requests with field paths', async () => {
    const r = await t.request('POST', '/v1/keys', {
      body: { name: '', scopes: ['write:x', 'publish:a..b'], color: 1 },
    });
    assert.equal(r.status, 400);
    const paths = r.body.error.details.errors.map((e: { path: string }) => e.path).sort();
    assert.deepEqual(paths, ['/color', '/name', '/scopes/0', '/scopes/1']);
    assert.equal((await t.request('DELETE', '/v1/keys/key_unknown')).status, 404);
  });

  it('accepts HS256 and EdDSA JWTs with scopes in the scope claim, and refuses expired or foreign ones', async () => {
    const now = Math.floor(Date.now() / 1000);
    const hs = await new SignJWT({ scope: 'publish:decisions.equity.> subscribe:decisions.>' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('svc-coordination')
      .setIssuer('test-issuer')
      .setExpirationTime(now + 60)
      .sign(new TextEncoder().encode(secret));
    assert.equal((await t.request('POST', '/v1/decisions', { body: makeDecision(20), key: hs })).status, 200);
    assert.equal((await t.request('GET', '/v1/decisions/dec-000020', { key: hs })).status, 200);
    assert.equal((await t.request('GET', '/v1/keys', { key: hs })).status, 403);
    const ed = await new SignJWT({ scope: 'subscribe:decisions.equity.>' })
      .setProtectedHeader({ alg: 'EdDSA' })
      .setSubject('ui')
      .setIssuer('test-issuer')
      .setExpirationTime(now + 60)
      .sign(keys.privateKey);
    assert.equal((await t.request('GET', '/v1/decisions/dec-000020', { key: ed })).status, 200);
    const expired = await new SignJWT({ scope: 'subscribe:>' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('x')
      .setIssuer('test-issuer')
      .setExpirationTime(now - 10)
      .sign(new TextEncoder().encode(secret));
    const r = await t.request('GET', '/v1/decisions/dec-000020', { key: expired });
    assert.equal(r.status, 401);
    assert.match(r.body.error.message, /exp/);
    const otherIssuer = await new SignJWT({ scope: 'subscribe:>' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('x')
      .setIssuer('evil')
      .setExpirationTime(now + 60)
      .sign(new TextEncoder().encode(secret));
    assert.equal((await t.request('GET', '/v1/decisions/dec-000020', { key: otherIssuer })).status, 401);
  });

  it('keeps a hash chain that verifies', async () => {
    const r = await t.request('GET', '/v1/audit/verify');
    assert.equal(r.status, 200);
    assert.equal(r.body.ok, true);
    assert.ok(r.body.records > 5);
  });
});
