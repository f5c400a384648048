/** Query over REST: every filter against an independent evaluation, cursors, order, restarts. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Decision } from '../../src/domain/decision.ts';
import { topicMatches } from '../../src/domain/topics.ts';
import { createDecisionGenerator, testSeed } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

describe('REST query', () => {
  let t: TestApp;
  const seed = testSeed('rest-query');
  const gen = createDecisionGenerator({ seed, portfolios: 12, idPrefix: 'q' });
  const published: Decision[] = gen.take(900);
  const amended: Decision[] = [];

  /** Every page of a query, following cursors. */
  const all = async (
    qs: string,
    limit = 37,
  ): Promise<{ decisionId: string; revision: number; position: string; decision: Decision }[]> => {
    const out = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 1000; pages++) {
      const r = await t.request(
        'GET',
        `/v1/decisions?${qs}${qs ? '&' : ''}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
      out.push(...r.body.items);
      cursor = r.body.nextCursor;
      if (cursor === null) return out;
    }
    throw new Error('too many pages');
  };
  /** Latest revision of each published decision. */
  const latest = (): Decision[] => {
    const m = new Map<string, Decision>();
    for (const d of [...published, ...amended])
      if ((m.get(d.decisionId)?.revision ?? 0) < d.revision) m.set(d.decisionId, d);
    return [...m.values()];
  };

  before(async () => {
    t = await startTestApp();
    for (let i = 0; i < published.length; i += 300) {
      const r = await t.request('POST', '/v1/decisions', { body: published.slice(i, i + 300) });
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 500));
    }
    for (const d of published.slice(0, 40))
      amended.push({ ...d, revision: 2, attributes: { ...d.attributes, amended: true } });
    const am = await t.request('POST', '/v1/decisions', { body: amended });
    assert.equal(am.status, 200, JSON.stringify(am.body));
  });
  after(() => t.close());

  const cases: [string, (d: Decision, topic: string) => boolean][] = [
    ['portfolioId=pf-0', (d) => d.portfolioId === 'pf-0'],
    ['strategyId=mean-reversion-3', (d) => d.strategyId === 'mean-reversion-3'],
    ['symbol=AAPL', (d) => d.instrument.symbol === 'AAPL'],
    ['assetClass=fx', (d) => d.instrument.assetClass === 'fx'],
    ['type=hedge', (d) => d.type === 'hedge'],
    ['verdict=rejected', (d) => d.policy.verdict === 'rejected'],
    ['minPriority=7', (d) => d.priority >= 7],
    ['minPriority=3&maxPriority=5', (d) => d.priority >= 3 && d.priority <= 5],
    [
      'assetClass=equity&verdict=approved&minPriority=4',
      (d) => d.instrument.assetClass === 'equity' && d.policy.verdict === 'approved' && d.priority >= 4,
    ],
    ['topic=decisions.equity.*', (_d, topic) => topicMatches('decisions.equity.*', topic)],
    ['topic=decisions.*.pf-1', (_d, topic) => topicMatches('decisions.*.pf-1', topic)],
    ['', () => true],
  ];
  for (const [qs, pred] of cases) {
    it(`?${qs || '(no filter)'} returns exactly the matching latest revisions, each once, in order`, async () => {
      const want = latest().filter((d) => pred(d, `decisions.${d.instrument.assetClass}.${d.portfolioId}`));
      const got = await all(qs);
      assert.equal(got.length, want.length, `seed ${seed}`);
      assert.deepEqual(
        new Set(got.map((g) => `${g.decisionId}@${g.revision}`)),
        new Set(want.map((d) => `${d.decisionId}@${d.revision}`)),
      );
      const offsets = got.map((g) => Number(g.position.split(':')[1]));
      assert.deepEqual(
        offsets,
        [...offsets].sort((a, b) => a - b),
        'ascending log order',
      );
    });
  }

  it('returns every revision with revisions=all, newest first with order=desc', async () => {
    const everything = await all('revisions=all', 101);
    assert.equal(everything.length, published.length + amended.length);
    const desc = await all('revisions=all&order=desc', 101);
    assert.deepEqual(
      desc.map((d) => d.position),
      everything.map((d) => d.position).reverse(),
    );
  });

  it('filters by receivedAt time ranges', async () => {
    const future = new Date(Date.now() + 3600_000).toISOString();
    assert.equal((await all(`from=${encodeURIComponent(future)}`)).length, 0);
    assert.equal((await all(`to=${encodeURIComponent(future)}`)).length, latest().length);
  });

  it('refuses altered, foreign and malformed cursors, and bad parameters, precisely', async () => {
    const first = await t.request('GET', '/v1/decisions?limit=5');
    const cursor: string = first.body.nextCursor;
    const altered = cursor.slice(0, 3) + (cursor[3] === 'A' ? 'B' : 'A') + cursor.slice(4);
    for (const [qs, code, path] of [
      [`limit=5&cursor=${encodeURIComponent(altered)}`, 'INVALID_CURSOR', 'cursor'],
      [`limit=5&assetClass=fx&cursor=${encodeURIComponent(cursor)}`, 'INVALID_CURSOR', 'cursor'],
      ['cursor=nonsense', 'INVALID_CURSOR', 'cursor'],
      ['limit=0', 'INVALID_QUERY', 'limit'],
      ['limit=abc', 'INVALID_QUERY', 'limit'],
      ['minPriority=10', 'INVALID_QUERY', 'minPriority'],
      ['assetClass=stocks', 'INVALID_QUERY', 'assetClass'],
      ['from=yesterday', 'INVALID_QUERY', 'from'],
      ['from=2026-11-28T00:00:00Z&to=2026-11-27T00:00:00Z', 'INVALID_QUERY', 'from'],
      ['topic=a..b', 'INVALID_QUERY', 'topic'],
      ['colour=red', 'INVALID_QUERY', 'colour'],
      ['portfolioId=a&portfolioId=b', 'INVALID_QUERY', 'portfolioId'],
    ] as const) {
      const r = await t.request('GET', `/v1/decisions?${qs}`);
      assert.equal(r.status, 400, qs);
      assert.equal(r.body.error.code, code, qs);
      assert.equal(r.body.error.details.errors[0].path, path, qs);
    }
  });

  it('keeps everything, and idempotency, across a restart', async () => {
    const dir = t.dataDir;
    await t.close({ keep: true });
    t = await startTestApp({}, dir);
    assert.equal((await all('', 1000)).length, latest().length);
    const dup = await t.request('POST', '/v1/decisions', { body: published[5] });
    assert.equal(dup.body.duplicate, true);
    const status = await t.request('GET', '/v1/status');
    assert.equal(status.body.totals.storedRevisions, published.length + amended.length);
  });
});
