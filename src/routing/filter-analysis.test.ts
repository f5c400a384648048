import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyseFilter, filterHolds, tryAnalyseFilter } from './filter-analysis.ts';
import { sampleDecision } from './test-fixtures.ts';

const termsOf = (src: string) =>
  analyseFilter(src).indexable.map((t) => ({ field: t.field, values: [...t.values] }));

test('equality and in-list conjuncts become terms, either operand order', () => {
  const f = analyseFilter(
    "decision.portfolioId == 'pf-17' && 'equity' == decision.instrument.assetClass && decision.priority in [7, 8, 7] && decision.priority >= 5",
  );
  assert.deepEqual(termsOf(f.source), [
    { field: 'portfolioId', values: ['pf-17'] },
    { field: 'instrument.assetClass', values: ['equity'] },
    { field: 'priority', values: [7, 8] },
  ]);
  assert.equal(f.remainder?.source, '(decision.priority >= 5)');
});

test('a condition made only of terms has no remainder', () => {
  const f = analyseFilter("decision.portfolioId in ['a', 'b'] && decision.attributes.desk == 'x'");
  assert.equal(f.remainder, null);
  assert.equal(f.indexable.length, 2);
});

test('a top-level disjunction, negation or comparison is not indexable', () => {
  for (const src of [
    "decision.portfolioId == 'a' || decision.portfolioId == 'b'",
    "!(decision.portfolioId == 'a')",
    'decision.priority > 3',
    "decision.portfolioId != 'a'",
    'decision.portfolioId == decision.accountId',
    "'pf' in decision.portfolioId",
    'decision.priority == 9007199254740993',
    'decision.priority == 1u',
    'decision.attributes.urgent == true',
  ]) {
    const f = analyseFilter(src);
    assert.equal(f.indexable.length, 0, src);
    assert.equal(f.remainder, f.full, src);
  }
});

test('negative and double literals are keys by value', () => {
  assert.deepEqual(termsOf('decision.attributes.score == -3'), [{ field: 'attributes.score', values: [-3] }]);
  assert.deepEqual(termsOf('decision.priority in [7.0, 8.5]'), [{ field: 'priority', values: [7, 8.5] }]);
});

test('compile errors come back with their position', () => {
  const r = tryAnalyseFilter("decision.portfolioId == 'a' && (", '/filter');
  assert.equal('code' in r && r.path, '/filter');
});

// A small generator of conditions and decisions, to check that the analysed form selects exactly
// what the full expression selects, including where fields are missing or of another type.
function rng(seed: number) {
  return (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
}

const pick = <T>(r: (n: number) => number, xs: readonly T[]): T => xs[r(xs.length)] as T;

function genAtom(r: (n: number) => number): string {
  const field = pick(r, [
    'portfolioId',
    'priority',
    'instrument.assetClass',
    'attributes.desk',
    'attributes.score',
    'attributes.missing',
    'instrument',
  ]);
  const lit = () =>
    pick(r, ["'pf-1'", "'pf-2'", "'equity'", "'etf'", "'eq-us'", '1', '2', '7', '7.0', '-1', '2.5']);
  switch (r(9)) {
    case 0:
      return `decision.${field} == ${lit()}`;
    case 1:
      return `${lit()} == decision.${field}`;
    case 2:
      return `decision.${field} in [${pick(r, ["'pf-1', 'pf-2'", "'equity', 'etf'", '1, 2, 7', "'eq-us'", '2.5, 7.0'])}]`;
    case 3:
      return `decision.priority ${pick(r, ['>', '>=', '<', '!='])} ${r(10)}`;
    case 4:
      return `double(decision.quantity) > ${r(3000)}.0`;
    case 5:
      return `has(decision.attributes.${pick(r, ['desk', 'missing'])})`;
    case 6:
      return `decision.${field} != ${lit()}`;
    case 7:
      return `!(decision.${field} == ${lit()})`;
    default:
      return pick(r, ['true', 'false']);
  }
}

function genExpr(r: (n: number) => number, depth: number): string {
  if (depth === 0 || r(3) === 0) return genAtom(r);
  const a = genExpr(r, depth - 1);
  const b = genExpr(r, depth - 1);
  return pick(r, [`${a} && ${b}`, `${a} && ${b}`, `(${a}) && (${b})`, `(${a} || ${b})`]);
}

function genDecision(r: (n: number) => number): unknown {
  const attributes: Record<string, unknown> = {};
  if (r(3) > 0) attributes.desk = pick(r, ['eq-us', 'eq-eu', 7, 'pf-1']);
  if (r(3) > 0) attributes.score = pick(r, [1, 2, 2.5, 7, -1, '7']);
  return sampleDecision({
    portfolioId: pick(r, ['pf-1', 'pf-2', 'pf-3']),
    priority: r(10),
    quantity: pick(r, ['10', '1500', '2999.5']),
    instrument: { symbol: 'X', assetClass: pick(r, ['equity', 'etf', 'fx']), currency: 'USD' },
    attributes: attributes as Record<string, string | number | boolean>,
  });
}

test('randomized: the analysed form selects exactly what the full expression selects', () => {
  const r = rng(7);
  let indexed = 0;
  let withRemainder = 0;
  for (let i = 0; i < 400; i++) {
    const src = genExpr(r, 3);
    const f = tryAnalyseFilter(src);
    if ('code' in f) continue; // some generated mixes do not type-check; they are refused, not analysed
    if (f.indexable.length > 0) indexed++;
    if (f.indexable.length > 0 && f.remainder !== null) withRemainder++;
    for (let k = 0; k < 25; k++) {
      const d = genDecision(r);
      assert.equal(filterHolds(f, d), f.full.matches({ decision: d }), `${src} on ${JSON.stringify(d)}`);
    }
  }
  assert.ok(indexed > 50, `only ${indexed} indexed expressions generated`);
  assert.ok(withRemainder > 20, `only ${withRemainder} with both terms and remainder`);
});
