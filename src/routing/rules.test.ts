import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileRuleSet, type RuleSetInput } from './rules.ts';
import { sampleDecision } from './test-fixtures.ts';
import { isCdsError, type FieldError } from '../errors/index.ts';

const d = sampleDecision(); // pf-17, equity, priority 7, trade, quantity 1500
const NOW = Date.parse('2026-11-27T09:30:00Z');

test('no rule matched: the default route, key portfolioId, priority unchanged', () => {
  const rs = compileRuleSet({
    rules: [{ id: 'fx', condition: "decision.instrument.assetClass == 'fx'", topics: ['fx.all'] }],
  });
  assert.deepEqual(rs.route(d, NOW), {
    topics: ['decisions.equity.pf-17'],
    defaultTopic: 'decisions.equity.pf-17',
    key: 'pf-17',
    priority: 7,
    matchedRules: [],
  });
});

test('rules go on by default, topics are deduplicated, stop ends evaluation', () => {
  const rs = compileRuleSet({
    rules: [
      { id: 'a', condition: "decision.portfolioId == 'pf-17'", topics: ['desk.{attributes.desk}', 'big'] },
      { id: 'b', condition: 'double(decision.quantity) > 1000.0', topics: ['big'], stop: true },
      { id: 'c', condition: 'true', topics: ['never'] },
    ],
    defaultRoute: 'd.{portfolioId}',
  });
  const out = rs.route(d, NOW);
  assert.deepEqual(out.topics, ['desk.eq-us', 'big']);
  assert.deepEqual(out.matchedRules, ['a', 'b']);
  assert.equal(out.defaultTopic, 'd.pf-17');
  const small = rs.route(sampleDecision({ quantity: '10' }), NOW);
  assert.deepEqual(small.matchedRules, ['a', 'c']);
  assert.deepEqual(small.topics, ['desk.eq-us', 'big', 'never']);
});

test('indexed and unindexed rules are evaluated in rule order', () => {
  const rs = compileRuleSet({
    rules: [
      { id: 'u1', condition: 'decision.priority > 1', topics: ['t.u1'] },
      {
        id: 'i1',
        condition: "decision.portfolioId in ['pf-17', 'pf-1'] && decision.priority > 1",
        topics: ['t.i1'],
      },
      { id: 'u2', condition: 'decision.priority > 2', topics: ['t.u2'] },
      { id: 'i2', condition: "decision.type == 'trade'", topics: ['t.i2'] },
      { id: 'i3', condition: "decision.type == 'hedge'", topics: ['t.i3'] },
    ],
  });
  assert.equal(rs.indexedRules, 3);
  assert.deepEqual(rs.route(d, NOW).matchedRules, ['u1', 'i1', 'u2', 'i2']);
});

test('many candidates from several indexed fields and unindexed rules come in rule order', () => {
  // Candidates are collected field by field, so they arrive out of order; more than 16 of them
  // takes the general sort, fewer the insertion sort.
  for (const count of [12, 40]) {
    const conditions = [
      "decision.accountId == 'acc-1'",
      "decision.portfolioId == 'pf-17'",
      "decision.instrument.assetClass in ['equity']",
      'decision.priority > 0',
    ];
    const rules = Array.from({ length: count }, (_, i) => ({
      id: `r${i}`,
      condition: conditions[(i * 7) % 4] as string,
      topics: [`t.r${i}`],
    }));
    const out = compileRuleSet({ rules }).route(d, NOW);
    assert.deepEqual(
      out.matchedRules,
      rules.map((r) => r.id),
    );
    assert.deepEqual(
      out.topics,
      rules.map((r) => `t.${r.id}`),
    );
  }
});

test('setPriority and setKey: the last matching rule wins', () => {
  const rs = compileRuleSet({
    rules: [
      { id: 'p', condition: "decision.type == 'trade'", actions: { setPriority: 9, setKey: '{accountId}' } },
      { id: 'q', condition: 'decision.priority == 7', actions: { setKey: 'k-{portfolioId}' } },
    ],
  });
  const out = rs.route(d, NOW);
  assert.equal(out.priority, 9);
  assert.equal(out.key, 'k-pf-17');
  assert.deepEqual(out.topics, ['decisions.equity.pf-17']);
});

test('drop: no topics, evaluation ends', () => {
  const rs = compileRuleSet({
    rules: [
      { id: 't', condition: 'true', topics: ['x'] },
      { id: 'drop', condition: "decision.policy.verdict == 'approved'", actions: { drop: true } },
      { id: 'after', condition: 'true', topics: ['y'] },
    ],
  });
  const out = rs.route(d, NOW);
  assert.equal(out.dropped, true);
  assert.deepEqual(out.topics, []);
  assert.deepEqual(out.matchedRules, ['t', 'drop']);
});

test('quarantine: only the quarantine topic, evaluation ends', () => {
  const rs = compileRuleSet({
    rules: [
      { id: 't', condition: 'true', topics: ['x'] },
      { id: 'q', condition: 'decision.priority >= 7', actions: { quarantine: 'quarantine.review' } },
      { id: 'after', condition: 'true', topics: ['y'] },
    ],
  });
  const out = rs.route(d, NOW);
  assert.equal(out.quarantined, 'quarantine.review');
  assert.deepEqual(out.topics, ['quarantine.review']);
  assert.deepEqual(out.matchedRules, ['t', 'q']);
});

test('holdUntil and delayMs: the latest hold wins', () => {
  const rs = compileRuleSet({
    rules: [
      { id: 'h', condition: 'true', actions: { holdUntil: '2026-11-27T09:30:05+00:00' } },
      { id: 'd', condition: 'decision.priority > 8', actions: { delayMs: 60_000 } },
    ],
  });
  assert.equal(rs.route(d, NOW).holdUntil, '2026-11-27T09:30:05.000Z');
  assert.equal(rs.route(sampleDecision({ priority: 9 }), NOW).holdUntil, '2026-11-27T09:31:00.000Z');
});

test('evaluation and rendering errors are reported in the outcome, never thrown', () => {
  const rs = compileRuleSet({
    rules: [
      { id: 'e', condition: 'double(decision.attributes.nothere) > 1.0', topics: ['x'] },
      {
        id: 'r',
        condition: 'true',
        topics: ['v.{instrument.venue}', 'ok'],
        actions: { setKey: '{attributes.missing}' },
      },
    ],
  });
  const dd = sampleDecision();
  delete dd.instrument.venue;
  const out = rs.route(dd, NOW);
  assert.deepEqual(out.topics, ['ok']);
  assert.equal(out.key, 'pf-17');
  assert.deepEqual(
    out.errors?.map((e) => [e.ruleId, e.kind]),
    [
      ['e', 'condition'],
      ['r', 'topic'],
      ['r', 'key'],
    ],
  );
});

test('a default route that cannot be rendered is a precise error', () => {
  const rs = compileRuleSet({ rules: [], defaultRoute: 'd.{attributes.desk}' });
  assert.throws(
    () => rs.route(sampleDecision({ attributes: { desk: 'a.b' } }), NOW),
    (e) =>
      isCdsError(e, 'VALIDATION_FAILED') &&
      (e.details?.errors as FieldError[])[0]?.path === '/attributes/desk',
  );
});

test('validation reports every error with its path and compiles nothing', () => {
  const input = {
    rules: [
      { id: 'ok', condition: 'true', topics: ['a'] },
      { id: 'ok', condition: 'decision.(', topics: ['b.{nope}'] },
      { id: 'x', condition: 'true' },
      {
        id: 'y',
        condition: 'true',
        topics: ['c'],
        actions: {
          setPriority: 10,
          drop: true,
          quarantine: 'a..b',
          holdUntil: 'tomorrow',
          delayMs: -1,
          color: 'red',
        },
        stop: 'yes',
      },
    ],
    defaultRoute: 'd.{',
    extra: 1,
  } as unknown as RuleSetInput;
  let errors: FieldError[] = [];
  assert.throws(
    () => compileRuleSet(input),
    (e) => isCdsError(e, 'VALIDATION_FAILED') && Array.isArray((errors = e.details?.errors as FieldError[])),
  );
  const paths = errors.map((e) => `${e.path}:${e.code}`).sort();
  assert.deepEqual(paths, [
    '/defaultRoute:unbalanced_braces',
    '/extra:unknown_field',
    '/rules/1/condition:cel_syntax',
    '/rules/1/id:duplicate',
    '/rules/1/topics/0:unknown_field',
    '/rules/2/topics:required',
    '/rules/3/actions/color:unknown_field',
    '/rules/3/actions/delayMs:range',
    '/rules/3/actions/holdUntil:format',
    '/rules/3/actions/quarantine:invalid_topic',
    '/rules/3/actions/setPriority:range',
    '/rules/3/actions:conflict',
    '/rules/3/actions:conflict',
    '/rules/3/stop:type',
  ]);
  const cond = errors.find((e) => e.path === '/rules/1/condition') as FieldError & { column?: number };
  assert.equal(cond.column, 10);
});

test('the compiled set is immutable', () => {
  const rs = compileRuleSet({ rules: [] });
  assert.equal(Object.isFrozen(rs), true);
});
