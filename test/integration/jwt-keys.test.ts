/** JWTs verified with an RS256 PEM public key and with a JWKS file; audience checked; foreign keys refused. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { exportJWK, SignJWT } from 'jose';
import { startTestApp, type TestApp } from '../helpers/app.ts';

const dir = mkdtempSync(join(tmpdir(), 'cds-jwks-'));
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });

async function token(
  key: Parameters<SignJWT['sign']>[0],
  alg: string,
  opts: { kid?: string; aud?: string } = {},
) {
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ scope: 'admin:>' })
    .setProtectedHeader({ alg, ...(opts.kid ? { kid: opts.kid } : {}) })
    .setSubject('svc')
    .setExpirationTime(now + 60);
  if (opts.aud) jwt = jwt.setAudience(opts.aud);
  return jwt.sign(key);
}

describe('JWT keys', () => {
  const apps: TestApp[] = [];
  after(async () => {
    for (const a of apps) await a.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies RS256 with a PEM public key, and checks the audience', async () => {
    const pem = join(dir, 'rsa.pem');
    writeFileSync(pem, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
    const t = await startTestApp({ security: { jwtPublicKeyFile: pem, jwtAudience: 'cds' } });
    apps.push(t);
    assert.equal(
      (await t.request('GET', '/v1/keys', { key: await token(rsa.privateKey, 'RS256', { aud: 'cds' }) }))
        .status,
      200,
    );
    const wrongAud = await t.request('GET', '/v1/keys', {
      key: await token(rsa.privateKey, 'RS256', { aud: 'other' }),
    });
    assert.equal(wrongAud.status, 401);
    assert.match(wrongAud.body.error.message, /aud/);
    const foreign = await t.request('GET', '/v1/keys', {
      key: await token(stranger.privateKey, 'RS256', { aud: 'cds' }),
    });
    assert.equal(foreign.status, 401);
  });

  it('verifies tokens against a JWKS file by kid (RS256 and EdDSA)', async () => {
    const jwks = join(dir, 'jwks.json');
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256' },
      { ...(await exportJWK(ed.publicKey)), kid: 'ed-1', alg: 'EdDSA' },
    ];
    writeFileSync(jwks, JSON.stringify({ keys }));
    const t = await startTestApp({ security: { jwtJwksFile: jwks } });
    apps.push(t);
    assert.equal(
      (await t.request('GET', '/v1/keys', { key: await token(rsa.privateKey, 'RS256', { kid: 'rsa-1' }) }))
        .status,
      200,
    );
    assert.equal(
      (await t.request('GET', '/v1/keys', { key: await token(ed.privateKey, 'EdDSA', { kid: 'ed-1' }) }))
        .status,
      200,
    );
    assert.equal(
      (
        await t.request('GET', '/v1/keys', {
          key: await token(stranger.privateKey, 'RS256', { kid: 'rsa-1' }),
        })
      ).status,
      401,
    );
    assert.equal(
      (await t.request('GET', '/v1/keys', { key: await token(rsa.privateKey, 'RS256', { kid: 'unknown' }) }))
        .status,
      401,
    );
  });
});
