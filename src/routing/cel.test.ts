import { test } from 'node:test';
import assert from 'node:assert/strict';
import { celErrorTotal, compileCel, lineColumn, tryCompileCel, type ExpressionFieldError } from './cel.ts';
import { sampleDecision } from './test-fixtures.ts';
import { isCdsError, type FieldError } from '../errors/index.ts';

const ctx = { decision: sampleDecision() };

test('evaluates the documented kinds of condition', () => {
  const yes = [
    "decision.portfolioId == 'pf-17' && decision.priority >= 7",
    "decision.instrument.assetClass in ['equity','etf']",
    "decision.attributes.desk == 'eq-us'",
    'double(decision.quantity) > 1000.0',
    'decision.priority == 7',
    "'pf-17' == decision.portfolioId",
  ];
  for (const s of yes) assert.equal(compileCel(s).matches(ctx), true, s);
  const no = [
    "decision.portfolioId == 'pf-18'",
    'double(decision.quantity) > 2000.0',
    'decision.priority in [1, 2]',
  ];
  for (const s of no) assert.equal(compileCel(s).matches(ctx), false, s);
});

test('compile errors carry offset, line and column', () => {
  const r = tryCompileCel(
    "decision.portfolioId == 'a' &&\n  decision.x +* 2",
    '/rules/3/condition',
  ) as ExpressionFieldError;
  assert.equal(r.path, '/rules/3/condition');
  assert.equal(r.code, 'cel_syntax');
  assert.equal(r.line, 2);
  assert.equal(r.offset, 45);
  assert.equal(r.column, 15);
  assert.match(r.message, /line 2, column 15/);
  assert.throws(
    () => compileCel('decision.(', '/filter'),
    (e) => isCdsError(e, 'VALIDATION_FAILED') && (e.details?.errors as FieldError[])[0]?.path === '/filter',
  );
});

test('type errors, unknown variables, non-boolean and empty expressions are refused', () => {
  assert.equal((tryCompileCel('other == 1') as ExpressionFieldError).code, 'cel_type');
  assert.equal((tryCompileCel("1 + 'a' == 2") as ExpressionFieldError).code, 'cel_type');
  assert.equal((tryCompileCel('1 + 2') as ExpressionFieldError).code, 'cel_not_boolean');
  assert.equal((tryCompileCel('  ') as ExpressionFieldError).code, 'required');
  assert.equal((tryCompileCel('true || '.repeat(1000) + 'true') as ExpressionFieldError).code, 'too_long');
});

test('evaluation errors are no match, counted, never thrown', () => {
  const c = compileCel("decision.nothere == 'x'");
  const before = c.errorCount;
  const total = celErrorTotal();
  assert.equal(c.matches(ctx), false);
  assert.equal(c.errorCount, before + 1);
  assert.equal(celErrorTotal(), total + 1);
  const out = c.evaluate(ctx);
  assert.equal(typeof out === 'object' && /nothere/.test(out.error), true);
  const dyn = compileCel('decision.priority');
  assert.equal(dyn.matches(ctx), false);
  assert.deepEqual(dyn.evaluate(ctx), { error: 'the expression gave number, not bool' });
});

test('compiled programs are cached by source text', () => {
  assert.equal(compileCel('decision.priority > 1'), compileCel('decision.priority > 1'));
});

test('lineColumn counts from 1', () => {
  assert.deepEqual(lineColumn('ab\ncd', 0), { line: 1, column: 1 });
  assert.deepEqual(lineColumn('ab\ncd', 4), { line: 2, column: 2 });
});
