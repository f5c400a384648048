import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Environment } from '@marcbachmann/cel-js';
import { compileFast } from './cel-fast.ts';
import { celErrorTotal, compileCel } from './cel.ts';
import { sampleDecision } from './test-fixtures.ts';

// The reference: cel-js as cel.ts configures it, without the fast path.
const env = new Environment({ unlistedVariablesAreDyn: false }).registerVariable('decision', 'map');

/** What cel-js says: a boolean, or 'error' for an exception or a non-boolean. */
function reference(src: string, decision: unknown): boolean | 'error' {
  try {
    const v: unknown = env.parse(src)({ decision });
    return typeof v === 'boolean' ? v : 'error';
  } catch {
    return 'error';
  }
}

const SHAPES = [
  'decision.priority >= 3',
  'decision.priority > 9',
  'decision.priority < 2.5',
  'decision.priority <= -1',
  'decision.priority == 7',
  'decision.priority != 7.0',
  '3 < decision.priority',
  "decision.portfolioId == 'pf-17'",
  "'pf-17' != decision.portfolioId",
  'double(decision.quantity) > 100.0',
  'double(decision.quantity) <= 1500',
  '2000.0 > double(decision.limitPrice)',
  "decision.instrument.assetClass in ['equity', 'etf']",
  'decision.attributes.score in [1, 2, 3]',
  'decision.attributes.score in [2.5, -1.0]',
  'has(decision.attributes.desk)',
  'has(decision.expiresAt)',
  'true',
  'decision.priority > 9 || double(decision.quantity) > 100.0',
  "!(decision.portfolioId == 'pf-1') && decision.priority >= 2",
];

test('every compiled shape is compiled and agrees with cel-js on the sample decision', () => {
  const d = sampleDecision();
  for (const src of SHAPES) {
    const f = compileFast(env.parse(src).ast);
    assert.ok(f !== undefined, `${src} has no fast form`);
    assert.equal(f(d), reference(src, d), src);
    assert.equal(compileCel(src).fast, true, src);
  }
});

test('shapes without a compiled form are left to cel-js', () => {
  for (const src of [
    'int(decision.priority) == 7',
    "decision['portfolioId'] == 'x'",
    'decision.priority == 1u',
    "decision.portfolioId > 'a'",
    'decision.priority + 1 > 3',
    'decision.priority == 9007199254740993',
  ]) {
    assert.equal(compileFast(env.parse(src).ast), undefined, src);
    assert.equal(compileCel(src).fast, false, src);
  }
});

test('odd values make the fast form answer "unknown", and cel-js then decides and counts errors', () => {
  const odd = sampleDecision({ quantity: ' 12' as string });
  const src = 'double(decision.quantity) > 1.0';
  const f = compileFast(env.parse(src).ast);
  assert.equal(f?.(odd), undefined);
  assert.equal(reference(src, odd), 'error');
  const c = compileCel(src);
  const before = c.errorCount;
  const total = celErrorTotal();
  assert.equal(c.holds(odd), false);
  assert.equal(c.matches({ decision: odd }), false);
  const out = c.outcome(odd);
  assert.equal(typeof out === 'object' && /double/.test(out.error), true);
  assert.equal(c.errorCount, before + 3);
  assert.equal(celErrorTotal(), total + 3);
  // A missing field is unknown to the fast form and an error to cel-js: no match, counted.
  const missing = compileCel('decision.attributes.nothere >= 1 && decision.priority >= 0');
  const n = missing.errorCount;
  assert.equal(missing.holds(sampleDecision()), false);
  assert.equal(missing.errorCount, n + 1);
  // `false && error` is false in CEL, with no error.
  const absorbed = compileCel('decision.priority > 100 && decision.attributes.nothere >= 1');
  assert.equal(absorbed.holds(sampleDecision()), false);
  assert.equal(absorbed.errorCount, 0);
});

// Randomized equivalence: wherever the fast form answers, cel-js gives the same boolean (never an error).
function rng(seed: number) {
  return (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
}
const pick = <T>(r: (n: number) => number, xs: readonly T[]): T => xs[r(xs.length)] as T;

const FIELDS = [
  'portfolioId',
  'priority',
  'quantity',
  'instrument.assetClass',
  'attributes.desk',
  'attributes.score',
  'attributes.missing',
  'instrument',
  'policy.ruleIds',
];
const LITERALS = ["'pf-1'", "'equity'", "'eq-us'", "'7'", '1', '2', '7', '7.0', '-1', '2.5', '0', '1500.0'];

function atom(r: (n: number) => number): string {
  const f = pick(r, FIELDS);
  const op = pick(r, ['==', '!=', '<', '<=', '>', '>=']);
  switch (r(8)) {
    case 0:
      return `decision.${f} ${op} ${pick(r, LITERALS)}`;
    case 1:
      return `${pick(r, LITERALS)} ${op} decision.${f}`;
    case 2:
      return `double(decision.${f}) ${op} ${pick(r, ['100.0', '1500', '-3.5', '0'])}`;
    case 3:
      return `decision.${f} in [${pick(r, ["'pf-1', 'pf-2'", "'equity', 'etf'", '1, 2, 7', '2.5, 7.0', "'7'", '-1'])}]`;
    case 4:
      return `has(decision.${f})`;
    case 5:
      return `!(${atom(r)})`;
    case 6:
      return pick(r, ['true', 'false', 'int(decision.priority) == 7']);
    default:
      return `decision.${f} ${op} ${pick(r, LITERALS)}`;
  }
}

function expr(r: (n: number) => number, depth: number): string {
  if (depth === 0 || r(3) === 0) return atom(r);
  const a = expr(r, depth - 1);
  const b = expr(r, depth - 1);
  return pick(r, [`${a} && ${b}`, `(${a}) || (${b})`, `!(${a} && ${b})`, `${a} || ${b}`]);
}

function decision(r: (n: number) => number): unknown {
  const attributes: Record<string, unknown> = {};
  if (r(3) > 0) attributes.desk = pick(r, ['eq-us', 'pf-1', 7, '7', true]);
  if (r(3) > 0) attributes.score = pick(r, [1, 2, 2.5, 7, -1, '7', 0, -0, 1e21]);
  return sampleDecision({
    portfolioId: pick(r, ['pf-1', 'pf-2', '7']),
    priority: pick(r, [0, 1, 2, 7, 9]),
    quantity: pick(r, [
      '10',
      '1500',
      '1500.0',
      '2999.5',
      '-3.5',
      '1e3',
      ' 12',
      '0x10',
      'NaN',
      '',
      '1.',
      '.5',
    ]),
    instrument: { symbol: 'X', assetClass: pick(r, ['equity', 'etf', 'fx']), currency: 'USD' },
    attributes: attributes as Record<string, string | number | boolean>,
  });
}

test('randomized: the fast form agrees with cel-js wherever it answers, and answers often', () => {
  const r = rng(11);
  let answered = 0;
  let asked = 0;
  for (let i = 0; i < 600; i++) {
    const src = expr(r, 3);
    let ast;
    try {
      const p = env.parse(src);
      if (!p.check().valid) continue;
      ast = p.ast;
    } catch {
      continue;
    }
    const f = compileFast(ast);
    const c = compileCel(src);
    for (let k = 0; k < 20; k++) {
      const d = decision(r);
      const want = reference(src, d);
      asked++;
      const got = f?.(d);
      if (got !== undefined) {
        answered++;
        assert.equal(got, want, `${src} on ${JSON.stringify(d)}`);
      }
      // Through CompiledCel the result is always cel-js's: an error is no match.
      assert.equal(c.holds(d), want === true, `holds: ${src} on ${JSON.stringify(d)}`);
      const o = c.outcome(d);
      assert.equal(typeof o === 'boolean' ? o : 'error', want, `outcome: ${src}`);
    }
  }
  assert.ok(asked > 5000, `only ${asked} evaluations`);
  // The generator mixes many mismatched types and missing fields on purpose; about 37% are plain.
  assert.ok(answered > asked / 4, `the fast form answered ${answered} of ${asked}`);
});
