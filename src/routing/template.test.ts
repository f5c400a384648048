import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTemplate, templateErrors } from './template.ts';
import { sampleDecision } from './test-fixtures.ts';
import { isCdsError, type FieldError } from '../errors/index.ts';

test('renders the default template', () => {
  const t = compileTemplate('decisions.{instrument.assetClass}.{portfolioId}');
  assert.equal(t.render(sampleDecision()), 'decisions.equity.pf-17');
  assert.deepEqual(t.fields, ['instrument.assetClass', 'portfolioId']);
});

test('renders fields mixed with literals in one token, numbers, booleans and attributes', () => {
  const t = compileTemplate('p{priority}.{attributes.desk}.x-{attributes.urgent}.{type}');
  assert.equal(t.render(sampleDecision()), 'p7.eq-us.x-true.trade');
});

test('a static template renders itself', () => {
  assert.equal(compileTemplate('decisions.all').render(sampleDecision()), 'decisions.all');
});

test('invalid templates are refused with field errors at the given path', () => {
  const cases: Array<[string, string]> = [
    ['decisions.{instrument.assetClass', 'unbalanced_braces'],
    ['decisions.instrument}.x', 'unbalanced_braces'],
    ['decisions.{a{b}}', 'unbalanced_braces'],
    ['decisions.{nope}', 'unknown_field'],
    ['decisions.{instrument.nope}', 'unknown_field'],
    ['decisions.{instrument}', 'not_scalar'],
    ['decisions.{policy.ruleIds}', 'not_scalar'],
    ['decisions.{}', 'invalid_field'],
    ['decisions..x', 'invalid_token'],
    ['decisions.a b', 'invalid_token'],
    ['decisions.*', 'invalid_token'],
    ['decisions.>', 'invalid_token'],
    ['', 'invalid_template'],
  ];
  for (const [src, code] of cases) {
    const errs = templateErrors(src, '/defaultRoute');
    assert.equal(errs[0]?.code, code, src);
    assert.equal(errs[0]?.path, '/defaultRoute');
    assert.throws(
      () => compileTemplate(src),
      (e) => isCdsError(e, 'VALIDATION_FAILED'),
    );
  }
});

test('reports every bad field, not only the first', () => {
  assert.equal(templateErrors('{nope}.{instrument}.{x}').length, 3);
});

test('a rendered value that is not a topic token is a precise error', () => {
  const t = compileTemplate('decisions.{attributes.desk}.{instrument.venue}');
  const dotted = t.tryRender(sampleDecision({ attributes: { desk: 'eq.us' } })) as FieldError;
  assert.equal(dotted.path, '/attributes/desk');
  assert.equal(dotted.code, 'invalid_topic_token');
  const missing = t.tryRender(sampleDecision({ attributes: {} })) as FieldError;
  assert.equal(missing.path, '/attributes/desk');
  assert.equal(missing.code, 'missing_field');
  const d = sampleDecision();
  delete d.instrument.venue;
  assert.throws(
    () => t.render(d),
    (e) =>
      isCdsError(e, 'VALIDATION_FAILED') &&
      (e.details?.errors as FieldError[])[0]?.path === '/instrument/venue',
  );
  const num = compileTemplate('x.{attributes.score}');
  assert.equal(num.render(sampleDecision({ attributes: { score: 2 } })), 'x.2');
  assert.equal(
    (num.tryRender(sampleDecision({ attributes: { score: 1.5 } })) as FieldError).code,
    'invalid_topic_token',
  );
});

test('does not read inherited properties', () => {
  const t = compileTemplate('x.{attributes.constructor}');
  assert.equal((t.tryRender(sampleDecision({ attributes: {} })) as FieldError).code, 'missing_field');
});
