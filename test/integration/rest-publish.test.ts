/** Publish over REST: idempotency, revisions, atomic batches, and every kind of bad input. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

const EXAMPLE = `{"decisionId":"dec-000001","revision":1,"coordinationId":"coord-2026-11-27-001","portfolioId":"pf-17","strategyId":"mean-reversion-3","accountId":"acc-9","type":"trade","instrument":{"symbol":"AAPL","assetClass":"equity","venue":"XNAS","currency":"USD"},"side":"buy","quantity":"1500","limitPrice":"189.25","orderType":"limit","timeInForce":"day","policy":{"verdict":"approved","ruleIds":["max-position"],"reasons":[]},"priority":5,"expiresAt":"2026-11-27T16:00:00Z","createdAt":"2026-11-27T09:30:00.123Z","attributes":{"desk":"eq-us"}}`;

describe('REST publish', () => {
  let t: TestApp;
  const next = () => t.app.ctx.log.extents()[0]?.next ?? 0;
  /** Asserts that a request changed nothing in the log and the service still answers. */
  const unchanged = async (before: number) => {
    assert.equal(next(), before, 'nothing was appended');
    assert.equal((await t.request('GET', '/healthz')).status, 200);
  };

  before(async () => {
    t = await startTestApp({ ingest: { maxBatch: 50 }, http: { port: 0, bodyLimitBytes: 64 * 1024 } });
  });
  after(() => t.close());

  it('accepts the README example exactly as written and answers with its topics and position', async () => {
    const r = await t.request('POST', '/v1/decisions', { body: EXAMPLE });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.topics, ['decisions.equity.pf-17']);
    assert.equal(r.body.duplicate, false);
    assert.match(r.body.position, /^\d+:\d+$/);
    assert.equal(r.body.epoch, t.app.ctx.log.epoch);
    const got = await t.request('GET', '/v1/decisions/dec-000001');
    assert.equal(got.status, 200);
    assert.deepEqual(got.body.decision, JSON.parse(EXAMPLE));
    assert.equal(got.body.key, 'pf-17');
  });

  it('returns the original position for the same decisionId, revision and body, and stores nothing', async () => {
    const first = await t.request('POST', '/v1/decisions', { body: makeDecision(100) });
    const n = next();
    // Same body with keys in another order is the same decision.
    const reordered = Object.fromEntries(Object.entries(makeDecision(100)).reverse());
    const again = await t.request('POST', '/v1/decisions', { body: reordered });
    assert.equal(again.status, 200);
    assert.equal(again.body.duplicate, true);
    assert.equal(again.body.position, first.body.position);
    await unchanged(n);
  });

  it('stores a decision published twice at once only once; the second answer waits for the first append', async () => {
    const n = next();
    const d = makeDecision(150);
    const [a, b] = await Promise.all([
      t.request('POST', '/v1/decisions', { body: [makeDecision(151), d] }),
      t.request('POST', '/v1/decisions', { body: d }),
    ]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    const first = a.body.results[1];
    assert.equal(first.position, b.body.position);
    assert.deepEqual([first.duplicate, b.body.duplicate].sort(), [false, true]);
    assert.equal(next(), n + 2, 'two decisions stored, not three');
  });

  it('refuses a different body at a stored revision with 409 and stores nothing', async () => {
    await t.request('POST', '/v1/decisions', { body: makeDecision(101) });
    const n = next();
    const r = await t.request('POST', '/v1/decisions', { body: makeDecision(101, { quantity: '1' }) });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'REVISION_CONFLICT');
    assert.equal(r.body.error.details.errors[0].path, '/revision');
    await unchanged(n);
  });

  it('stores amendments, answers duplicates of older revisions, refuses unknown lower revisions', async () => {
    const d1 = makeDecision(102);
    assert.equal((await t.request('POST', '/v1/decisions', { body: d1 })).status, 200);
    const r3 = await t.request('POST', '/v1/decisions', { body: { ...d1, revision: 3, quantity: '10' } });
    assert.equal(r3.status, 200);
    assert.equal(r3.body.duplicate, false);
    const n = next();
    const dup1 = await t.request('POST', '/v1/decisions', { body: d1 });
    assert.equal(dup1.body.duplicate, true);
    const gap = await t.request('POST', '/v1/decisions', { body: { ...d1, revision: 2 } });
    assert.equal(gap.status, 409);
    assert.equal(gap.body.error.code, 'REVISION_CONFLICT');
    await unchanged(n);
    const latest = await t.request('GET', '/v1/decisions/dec-000102');
    assert.equal(latest.body.revision, 3);
    assert.deepEqual(latest.body.revisions, [1, 3]);
    const old = await t.request('GET', '/v1/decisions/dec-000102?revision=1');
    assert.equal(old.body.decision.quantity, '1500');
    assert.equal((await t.request('GET', '/v1/decisions/dec-000102?revision=2')).status, 404);
  });

  it('refuses a revision that changes an identifying field (409 IDENTITY_CHANGED)', async () => {
    const d = makeDecision(103);
    await t.request('POST', '/v1/decisions', { body: d });
    const n = next();
    const r = await t.request('POST', '/v1/decisions', {
      body: { ...d, revision: 2, portfolioId: 'pf-other', instrument: { ...d.instrument, symbol: 'MSFT' } },
    });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'IDENTITY_CHANGED');
    assert.deepEqual(r.body.error.details.errors.map((e: { path: string }) => e.path).sort(), [
      '/instrument',
      '/portfolioId',
    ]);
    await unchanged(n);
  });

  it('stores a batch atomically and answers one result per item in order', async () => {
    const items = [
      makeDecision(200),
      makeDecision(201),
      { ...makeDecision(200), revision: 2, quantity: '7' },
      makeDecision(200),
    ];
    const r = await t.request('POST', '/v1/decisions', { body: items });
    assert.equal(r.status, 200);
    assert.equal(r.body.results.length, 4);
    assert.deepEqual(
      r.body.results.map((x: { duplicate: boolean }) => x.duplicate),
      [false, false, false, true],
    );
    assert.equal(r.body.results[3].position, r.body.results[0].position);
  });

  it('stores nothing of a batch with one bad item, and lists every bad item with codes and paths', async () => {
    const n = next();
    const bad1 = { ...makeDecision(301), quantity: 12 };
    const bad2: Record<string, unknown> = { ...makeDecision(302), extra: true };
    delete bad2['createdAt'];
    const r = await t.request('POST', '/v1/decisions', {
      body: [makeDecision(300), bad1, bad2, makeDecision(303)],
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'VALIDATION_FAILED');
    assert.deepEqual(
      r.body.error.details.items.map((i: { index: number }) => i.index),
      [1, 2],
    );
    const paths = r.body.error.details.errors
      .map((e: { path: string; code: string }) => `${e.path} ${e.code}`)
      .sort();
    assert.deepEqual(paths, ['/1/quantity type', '/2/createdAt required', '/2/extra unknown_field']);
    await unchanged(n);
    assert.equal((await t.request('GET', '/v1/decisions/dec-000300')).status, 404);
  });

  const badInputs: [string, () => Promise<{ status: number; body: any }>, number, string][] = [
    [
      'malformed JSON',
      () => t.request('POST', '/v1/decisions', { body: '{"decisionId": ' }),
      400,
      'MALFORMED_JSON',
    ],
    ['an empty body', () => t.request('POST', '/v1/decisions', { body: '' }), 400, 'MALFORMED_JSON'],
    [
      'wrong types',
      () =>
        t.request('POST', '/v1/decisions', {
          body: { ...makeDecision(400), revision: '1', priority: 'high' },
        }),
      400,
      'VALIDATION_FAILED',
    ],
    [
      'a missing field',
      () => t.request('POST', '/v1/decisions', { body: { ...makeDecision(401), policy: undefined } }),
      400,
      'VALIDATION_FAILED',
    ],
    [
      'an unknown field',
      () => t.request('POST', '/v1/decisions', { body: { ...makeDecision(402), limitprice: '1' } }),
      400,
      'VALIDATION_FAILED',
    ],
    [
      'a float quantity',
      () => t.request('POST', '/v1/decisions', { body: { ...makeDecision(403), quantity: '1e3' } }),
      400,
      'VALIDATION_FAILED',
    ],
    ['a scalar body', () => t.request('POST', '/v1/decisions', { body: '42' }), 400, 'VALIDATION_FAILED'],
    ['an empty batch', () => t.request('POST', '/v1/decisions', { body: [] }), 400, 'VALIDATION_FAILED'],
    [
      'a wrong content type',
      () => t.request('POST', '/v1/decisions', { body: EXAMPLE, headers: { 'content-type': 'text/plain' } }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'an oversized body',
      () =>
        t.request('POST', '/v1/decisions', {
          body:
            JSON.stringify(Array.from({ length: 49 }, (_, i) => makeDecision(5000 + i))) + ' '.repeat(70_000),
        }),
      413,
      'PAYLOAD_TOO_LARGE',
    ],
    [
      'an oversized batch',
      () =>
        t.request('POST', '/v1/decisions', {
          body: Array.from({ length: 51 }, (_, i) => makeDecision(600 + i)),
        }),
      413,
      'BATCH_TOO_LARGE',
    ],
    ['a GET with an unknown method', () => t.request('PUT', '/v1/decisions'), 404, 'ROUTE_NOT_FOUND'],
  ];
  for (const [name, send, status, code] of badInputs) {
    it(`answers ${name} with ${status} ${code}, stores nothing, keeps serving`, async () => {
      const n = next();
      const r = await send();
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.error.code, code);
      assert.equal(typeof r.body.error.message, 'string');
      await unchanged(n);
    });
  }

  it('names the field path of every failing field in a single decision', async () => {
    const r = await t.request('POST', '/v1/decisions', {
      body: {
        ...makeDecision(700),
        instrument: { symbol: 'AAPL', assetClass: 'Equity', currency: 'usd' },
        priority: 12,
        createdAt: 'yesterday',
      },
    });
    assert.equal(r.status, 400);
    const got = r.body.error.details.errors
      .map((e: { path: string; code: string }) => `${e.path} ${e.code}`)
      .sort();
    assert.deepEqual(got, [
      '/createdAt format',
      '/instrument/assetClass enum',
      '/instrument/currency pattern',
      '/priority too_large',
    ]);
  });

  it('requires side, quantity and orderType for trades, and limitPrice for limit orders', async () => {
    const r = await t.request('POST', '/v1/decisions', {
      body: makeDecision(701, { side: undefined, limitPrice: undefined }),
    });
    assert.equal(r.status, 400);
    const got = r.body.error.details.errors.map((e: { path: string }) => e.path).sort();
    assert.deepEqual(got, ['/limitPrice', '/side']);
    assert.equal(
      (
        await t.request('POST', '/v1/decisions', {
          body: makeDecision(702, {
            type: 'halt',
            side: undefined,
            quantity: undefined,
            orderType: undefined,
            limitPrice: undefined,
          }),
        })
      ).status,
      200,
    );
  });
});
