import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SubscriptionMatcher } from './matcher.ts';
import { sampleDecision } from './test-fixtures.ts';
import { compileCel } from './cel.ts';
import { topicMatches } from '../domain/topics.ts';
import { isCdsError, type FieldError } from '../errors/index.ts';

const d = sampleDecision();
const topics = ['decisions.equity.pf-17'];

test('patterns alone, with each id once however many patterns and topics match', () => {
  const m = new SubscriptionMatcher();
  m.add({ id: 'all', patterns: ['>', 'decisions.>', 'decisions.*.pf-17'] });
  m.add({ id: 'fx', patterns: ['decisions.fx.>'] });
  assert.deepEqual(m.match(d, [...topics, 'alerts.pf-17']).sort(), ['all']);
});

test('indexed filters, remainders and unindexed filters', () => {
  const m = new SubscriptionMatcher();
  m.add({ id: 'pf', patterns: ['decisions.>'], filter: "decision.portfolioId in ['pf-17', 'pf-18']" });
  m.add({
    id: 'pf-urgent',
    patterns: ['decisions.>'],
    filter: "decision.portfolioId == 'pf-17' && decision.priority >= 8",
  });
  m.add({
    id: 'two-terms',
    patterns: ['decisions.>'],
    filter: "decision.portfolioId == 'pf-17' && decision.type in ['hedge']",
  });
  m.add({ id: 'other-pf', patterns: ['decisions.>'], filter: "decision.portfolioId == 'pf-1'" });
  m.add({ id: 'size', patterns: ['decisions.equity.*'], filter: 'double(decision.quantity) > 1000.0' });
  m.add({ id: 'wrong-topic', patterns: ['decisions.fx.>'], filter: "decision.portfolioId == 'pf-17'" });
  assert.deepEqual(m.match(d, topics).sort(), ['pf', 'size']);
  assert.deepEqual(m.match(sampleDecision({ priority: 9, type: 'hedge' }), topics).sort(), [
    'pf',
    'pf-urgent',
    'size',
    'two-terms',
  ]);
});

test('an entry filed under a term is reached once even when several topics match', () => {
  const m = new SubscriptionMatcher();
  m.add({ id: 'a', patterns: ['x.*', 'y.*'], filter: "decision.portfolioId in ['pf-17', 'pf-17']" });
  assert.deepEqual(m.match(d, ['x.1', 'y.1', 'x.2']), ['a']);
});

test('add refuses bad input with every field error and a taken id; update and remove', () => {
  const m = new SubscriptionMatcher();
  assert.throws(
    () => m.add({ id: 's', patterns: ['a..b', 'ok'], filter: 'decision.(' }),
    (e) => {
      const errs = isCdsError(e, 'VALIDATION_FAILED') ? (e.details?.errors as FieldError[]) : [];
      return errs.map((x) => x.path).join(',') === '/patterns/0,/filter';
    },
  );
  assert.equal(m.size, 0);
  m.add({ id: 's', patterns: ['decisions.>'], filter: "decision.portfolioId == 'pf-17'" });
  assert.throws(
    () => m.add({ id: 's', patterns: ['x'] }),
    (e) => isCdsError(e, 'ALREADY_EXISTS'),
  );
  assert.throws(
    () => m.update({ id: 'nope', patterns: ['x'] }),
    (e) => isCdsError(e, 'NOT_FOUND'),
  );
  // A failed update changes nothing.
  assert.throws(() => m.update({ id: 's', patterns: ['x'], filter: '(' }));
  assert.deepEqual(m.match(d, topics), ['s']);
  m.update({ id: 's', patterns: ['decisions.>'], filter: "decision.portfolioId == 'pf-1'" });
  assert.deepEqual(m.match(d, topics), []);
  m.update({ id: 's', patterns: ['decisions.equity.>'] });
  assert.deepEqual(m.match(d, topics), ['s']);
  assert.equal(m.remove('s'), true);
  assert.equal(m.remove('s'), false);
  assert.deepEqual(m.match(d, topics), []);
});

test('explain gives the reason of every candidate', () => {
  const m = new SubscriptionMatcher();
  m.add({ id: 'taken', patterns: ['decisions.>'], filter: "decision.portfolioId == 'pf-17'" });
  m.add({ id: 'topic', patterns: ['decisions.fx.>'], filter: "decision.portfolioId == 'pf-17'" });
  m.add({
    id: 'term',
    patterns: ['decisions.>'],
    filter: "decision.portfolioId == 'pf-17' && decision.type == 'hedge'",
  });
  m.add({ id: 'rest', patterns: ['decisions.>'], filter: 'decision.priority > 8' });
  m.add({ id: 'err', patterns: ['decisions.>'], filter: 'double(decision.attributes.nothere) > 1.0' });
  m.add({ id: 'not-a-candidate', patterns: ['decisions.fx.>'] });
  assert.deepEqual(m.explain(d, topics), [
    { id: 'taken', taken: true },
    { id: 'topic', taken: false, reason: 'pattern_not_matched' },
    { id: 'term', taken: false, reason: 'term_not_matched', field: 'type' },
    { id: 'rest', taken: false, reason: 'remainder_false' },
    { id: 'err', taken: false, reason: 'evaluation_error', error: 'No such key: nothere' },
  ]);
});

test('randomized: match equals brute force over patterns and full filters', () => {
  let seed = 3;
  const r = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pfs = ['pf-1', 'pf-2', 'pf-3', 'pf-4'];
  const filters = [
    undefined,
    "decision.portfolioId == 'pf-1'",
    "decision.portfolioId in ['pf-2', 'pf-3'] && decision.priority > 4",
    "decision.instrument.assetClass == 'etf' || decision.priority == 9",
    "decision.priority in [1, 2, 3] && decision.portfolioId != 'pf-1'",
    "decision.attributes.desk == 'x' && decision.portfolioId == 'pf-4'",
  ];
  const pats = [
    'decisions.>',
    'decisions.equity.*',
    'decisions.*.pf-1',
    'decisions.etf.pf-2',
    '>',
    'alerts.>',
    'decisions.*',
    'decisions.*.*',
    'decisions.*.*.*',
    '*.equity.>',
    'decisions.*.>',
    '*.*.pf-1',
    'decisions.equit.*',
  ];
  const m = new SubscriptionMatcher();
  const entries = Array.from({ length: 60 }, (_, i) => ({
    id: `s${i}`,
    patterns: [pats[r(pats.length)] as string, pats[r(pats.length)] as string],
    filter: filters[r(filters.length)],
  }));
  for (const e of entries) m.add(e);
  for (let k = 0; k < 300; k++) {
    const dec = sampleDecision({
      portfolioId: pfs[r(4)] as string,
      priority: r(10),
      instrument: { symbol: 'X', assetClass: r(2) === 0 ? 'equity' : 'etf', currency: 'USD' },
      attributes: r(2) === 0 ? { desk: 'x' } : {},
    });
    const ts = [
      `decisions.${dec.instrument.assetClass}.${dec.portfolioId}`,
      ...(r(3) === 0 ? ['alerts.a'] : []),
      ...(r(4) === 0 ? [`decisions.${dec.instrument.assetClass}`] : []),
      ...(r(4) === 0 ? [`decisions.equity.${dec.portfolioId}.x`] : []),
    ];
    const want = entries
      .filter((e) => e.patterns.some((p) => ts.some((t) => topicMatches(p, t))))
      .filter((e) => e.filter === undefined || compileCel(e.filter).matches({ decision: dec }))
      .map((e) => e.id)
      .sort();
    assert.deepEqual(m.match(dec, ts).sort(), want);
  }
});

test('readsDecisions: true while some entry has a filter; without, match needs no decision', () => {
  const m = new SubscriptionMatcher();
  m.add({ id: 'p', patterns: ['decisions.>'] });
  assert.equal(m.readsDecisions, false);
  assert.deepEqual(m.match(null, topics), ['p']);
  m.add({ id: 'f', patterns: ['decisions.>'], filter: "decision.portfolioId == 'pf-17'" });
  m.add({ id: 'r', patterns: ['decisions.>'], filter: 'double(decision.quantity) > 1.0' });
  assert.equal(m.readsDecisions, true);
  m.update({ id: 'f', patterns: ['decisions.>'] });
  m.remove('r');
  assert.equal(m.readsDecisions, false);
});
