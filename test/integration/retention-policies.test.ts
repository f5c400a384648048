/** Retention policies over REST (ADR 0017): create, replace, list, delete, precise errors, audit. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../helpers/app.ts';

describe('retention policies over REST', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp({ retention: { intervalMs: 86_400_000 } });
  });
  after(async () => t?.close());

  const audit = async () => {
    await t.app.ctx.audit.drain();
    return (await t.request('GET', '/v1/audit?limit=1000')).body.records as {
      action: string;
      target: string;
    }[];
  };

  it('creates (201), replaces (200, next version), lists and gets a policy, each change audited', async () => {
    const r = await t.request('PUT', '/v1/retention-policies/eq-7d', {
      body: { pattern: 'decisions.equity.>', maxAgeMs: 604_800_000, onUnacknowledged: 'drop' },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.version, 1);
    assert.equal(r.body.onUnacknowledged, 'drop');
    const r2 = await t.request('PUT', '/v1/retention-policies/eq-7d', {
      body: { pattern: 'decisions.equity.>', maxCount: 10, version: 1 },
    });
    assert.equal(r2.status, 200, JSON.stringify(r2.body));
    assert.equal(r2.body.version, 2);
    assert.equal(r2.body.maxAgeMs, undefined, 'a replace is whole: absent limits are gone');
    assert.equal(r2.body.onUnacknowledged, 'wait', 'the default');
    const g = await t.request('GET', '/v1/retention-policies/eq-7d');
    assert.equal(g.status, 200);
    assert.equal(g.body.maxCount, 10);
    const l = await t.request('GET', '/v1/retention-policies');
    assert.ok(l.body.policies.some((p: { name: string }) => p.name === 'eq-7d'));
    const actions = (await audit()).filter((a) => a.target === 'eq-7d').map((a) => a.action);
    assert.deepEqual(actions, ['retention.create', 'retention.update']);
  });

  it('refuses bad input with every field named, and changes nothing', async () => {
    const r = await t.request('PUT', '/v1/retention-policies/bad', {
      body: { pattern: 'a.>.b', maxAgeMs: -5, maxCount: 'ten', onUnacknowledged: 'maybe', extra: true },
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'VALIDATION_FAILED');
    assert.deepEqual(
      r.body.error.details.errors.map((e: { path: string }) => e.path),
      ['/extra', '/pattern', '/maxAgeMs', '/maxCount', '/onUnacknowledged'],
    );
    assert.equal((await t.request('GET', '/v1/retention-policies/bad')).status, 404);
    const name = await t.request('PUT', '/v1/retention-policies/-x', { body: { pattern: '>' } });
    assert.equal(name.status, 400);
    assert.equal(name.body.error.details.errors[0].path, 'name');
    const json = await t.request('PUT', '/v1/retention-policies/j', { body: '{"pattern":' });
    assert.equal(json.status, 400);
    assert.equal(json.body.error.code, 'MALFORMED_JSON');
  });

  it('a version that is not the stored one is VERSION_CONFLICT; a second policy on a pattern is ALREADY_EXISTS', async () => {
    await t.request('PUT', '/v1/retention-policies/fx', { body: { pattern: 'decisions.fx.>', maxCount: 5 } });
    const stale = await t.request('PUT', '/v1/retention-policies/fx', {
      body: { pattern: 'decisions.fx.>', maxCount: 6, version: 7 },
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.error.code, 'VERSION_CONFLICT');
    const fresh = await t.request('PUT', '/v1/retention-policies/new-one', {
      body: { pattern: 'decisions.new.>', version: 3 },
    });
    assert.equal(fresh.status, 409, 'version 3 of an absent policy');
    const twin = await t.request('PUT', '/v1/retention-policies/fx-twin', {
      body: { pattern: 'decisions.fx.>' },
    });
    assert.equal(twin.status, 409);
    assert.equal(twin.body.error.code, 'ALREADY_EXISTS');
    assert.equal(twin.body.error.details.errors[0].path, '/pattern');
    assert.equal((await t.request('GET', '/v1/retention-policies/fx')).body.maxCount, 5);
  });

  it('deletes (204, audited); unknown names are 404; a stale version removes nothing', async () => {
    await t.request('PUT', '/v1/retention-policies/gone', { body: { pattern: 'decisions.gone.>' } });
    const stale = await t.request('DELETE', '/v1/retention-policies/gone?version=2');
    assert.equal(stale.status, 409);
    const bad = await t.request('DELETE', '/v1/retention-policies/gone?force=1');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_QUERY');
    assert.equal((await t.request('DELETE', '/v1/retention-policies/gone?version=1')).status, 204);
    assert.equal((await t.request('DELETE', '/v1/retention-policies/gone')).status, 404);
    assert.equal((await t.request('GET', '/v1/retention-policies/gone')).status, 404);
    assert.ok((await audit()).some((a) => a.action === 'retention.delete' && a.target === 'gone'));
  });

  it('needs admin:> (a denial is audited)', async () => {
    const k = await t.request('POST', '/v1/keys', {
      body: { name: 'eq-admin', scopes: ['admin:decisions.equity.>'] },
    });
    assert.equal(k.status, 201, JSON.stringify(k.body));
    const r = await t.request('PUT', '/v1/retention-policies/x', {
      body: { pattern: 'decisions.equity.>' },
      key: k.body.key,
    });
    assert.equal(r.status, 403);
    assert.equal((await t.request('GET', '/v1/retention-policies', { key: k.body.key })).status, 403);
    assert.ok(
      (await audit()).some(
        (a) => a.action === 'access.denied' && a.target.includes('/v1/retention-policies'),
      ),
    );
  });
});
