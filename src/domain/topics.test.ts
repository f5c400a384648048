import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { patternErrors, patternsOverlap, topicErrors, topicMatches } from './topics.ts';

describe('topics', () => {
  it('matches * to one token and > to the rest', () => {
    assert.equal(topicMatches('decisions.*.pf-1', 'decisions.equity.pf-1'), true);
    assert.equal(topicMatches('decisions.*', 'decisions.equity.pf-1'), false);
    assert.equal(topicMatches('decisions.>', 'decisions.equity.pf-1'), true);
    assert.equal(topicMatches('decisions.>', 'decisions'), false);
    assert.equal(topicMatches('>', 'a'), true);
    assert.equal(topicMatches('a.b', 'a.b'), true);
    assert.equal(topicMatches('a.b', 'a.b.c'), false);
  });
  it('validates names and patterns', () => {
    assert.deepEqual(topicErrors('a.b-c_1'), []);
    assert.equal(topicErrors('a..b')[0]?.code, 'invalid_topic');
    assert.equal(topicErrors('a.*')[0]?.code, 'invalid_topic');
    assert.deepEqual(patternErrors('a.*.>'), []);
    assert.equal(patternErrors('a.>.b')[0]?.code, 'invalid_pattern');
    assert.equal(patternErrors('')[0]?.code, 'invalid_pattern');
  });
  it('tells whether two patterns share a topic', () => {
    const yes: [string, string][] = [
      ['decisions.>', 'decisions.equity.pf-1'],
      ['decisions.*.pf-1', 'decisions.equity.*'],
      ['>', 'a'],
      ['a.*', 'a.>'],
      ['a.b.>', 'a.*.c'],
    ];
    const no: [string, string][] = [
      ['decisions.fx.>', 'decisions.equity.>'],
      ['a.*', 'a.b.c'],
      ['a.>', 'a'],
      ['a.b', 'a.c'],
      ['a.*.c', 'a.b.d'],
    ];
    for (const [a, b] of yes) assert.ok(patternsOverlap(a, b) && patternsOverlap(b, a), `${a} ~ ${b}`);
    for (const [a, b] of no) assert.ok(!patternsOverlap(a, b) && !patternsOverlap(b, a), `${a} !~ ${b}`);
  });
});
