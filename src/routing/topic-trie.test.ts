import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PatternIndex } from './topic-trie.ts';
import { topicMatches } from '../domain/topics.ts';
import { isCdsError } from '../errors/index.ts';

const sorted = (s: Set<string>) => [...s].sort();

test('exact pattern matches only the same topic', () => {
  const idx = new PatternIndex<string>();
  idx.add('decisions.equity.pf-17', 'a');
  assert.deepEqual(sorted(idx.match('decisions.equity.pf-17')), ['a']);
  assert.deepEqual(sorted(idx.match('decisions.equity')), []);
  assert.deepEqual(sorted(idx.match('decisions.equity.pf-17.x')), []);
  assert.deepEqual(sorted(idx.match('decisions.etf.pf-17')), []);
});

test('* matches exactly one token, anywhere', () => {
  const idx = new PatternIndex<string>();
  idx.add('decisions.*.pf-17', 'mid');
  idx.add('*.equity.pf-17', 'first');
  idx.add('decisions.equity.*', 'last');
  assert.deepEqual(sorted(idx.match('decisions.equity.pf-17')), ['first', 'last', 'mid']);
  assert.deepEqual(sorted(idx.match('decisions.fx.pf-17')), ['mid']);
  assert.deepEqual(sorted(idx.match('decisions.equity')), []);
  assert.deepEqual(sorted(idx.match('decisions.equity.pf-17.x')), []);
});

test('> matches one or more remaining tokens, never zero', () => {
  const idx = new PatternIndex<string>();
  idx.add('decisions.>', 'd');
  assert.deepEqual(sorted(idx.match('decisions.equity')), ['d']);
  assert.deepEqual(sorted(idx.match('decisions.equity.pf-17.x')), ['d']);
  assert.deepEqual(sorted(idx.match('decisions')), []);
  assert.deepEqual(sorted(idx.match('other.equity')), []);
});

test('> at root matches every topic', () => {
  const idx = new PatternIndex<string>();
  idx.add('>', 'all');
  assert.deepEqual(sorted(idx.match('a')), ['all']);
  assert.deepEqual(sorted(idx.match('a.b.c')), ['all']);
});

test('overlapping patterns give each value once, exact and wildcard together', () => {
  const idx = new PatternIndex<string>();
  idx.add('decisions.equity.pf-17', 'x');
  idx.add('decisions.*.pf-17', 'x');
  idx.add('decisions.>', 'x');
  idx.add('decisions.equity.*', 'y');
  idx.add('*.*.*', 'z');
  assert.deepEqual(sorted(idx.match('decisions.equity.pf-17')), ['x', 'y', 'z']);
  assert.deepEqual(sorted(idx.match('decisions.etf.pf-18')), ['x', 'z']);
});

test('matchAny unions over topics with each value at most once', () => {
  const idx = new PatternIndex<string>();
  idx.add('decisions.equity.>', 'eq');
  idx.add('decisions.fx.>', 'fx');
  idx.add('alerts.*', 'al');
  const got = idx.matchAny(['decisions.equity.pf-1', 'decisions.equity.pf-2', 'alerts.risk']);
  assert.deepEqual(sorted(got), ['al', 'eq']);
});

test('remove takes out one pair, prunes, and reports absence', () => {
  const idx = new PatternIndex<string>();
  idx.add('a.*.c', 'v');
  idx.add('a.*.c', 'w');
  idx.add('a.>', 'v');
  assert.equal(idx.size, 3);
  assert.equal(idx.remove('a.*.c', 'v'), true);
  assert.equal(idx.remove('a.*.c', 'v'), false);
  assert.equal(idx.remove('x.y', 'v'), false);
  assert.deepEqual(sorted(idx.match('a.b.c')), ['v', 'w']);
  assert.equal(idx.remove('a.>', 'v'), true);
  assert.equal(idx.remove('a.*.c', 'w'), true);
  assert.equal(idx.size, 0);
  assert.deepEqual(sorted(idx.match('a.b.c')), []);
});

test('adding the same pair twice keeps one', () => {
  const idx = new PatternIndex<string>();
  idx.add('a.b', 'v');
  idx.add('a.b', 'v');
  assert.equal(idx.size, 1);
  assert.equal(idx.remove('a.b', 'v'), true);
  assert.deepEqual(sorted(idx.match('a.b')), []);
});

test('invalid patterns are refused with VALIDATION_FAILED', () => {
  const idx = new PatternIndex<string>();
  for (const p of ['', 'a..b', 'a.>.b', 'a.b c', 'a.b*']) {
    assert.throws(
      () => idx.add(p, 'v'),
      (e) => isCdsError(e, 'VALIDATION_FAILED'),
    );
  }
});

test('agrees with topicMatches on random patterns and topics', () => {
  const tokens = ['a', 'b', 'c'];
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const patterns: string[] = [];
  for (let i = 0; i < 300; i++) {
    const len = 1 + rnd(4);
    const parts: string[] = [];
    for (let j = 0; j < len; j++) {
      const r = rnd(10);
      parts.push(j === len - 1 && r === 0 ? '>' : r < 3 ? '*' : (tokens[rnd(3)] as string));
    }
    patterns.push(parts.join('.'));
  }
  const idx = new PatternIndex<number>();
  patterns.forEach((p, i) => idx.add(p, i));
  for (let k = 0; k < 300; k++) {
    const len = 1 + rnd(5);
    const topic = Array.from({ length: len }, () => tokens[rnd(3)] as string).join('.');
    const want = patterns.flatMap((p, i) => (topicMatches(p, topic) ? [i] : []));
    assert.deepEqual(
      [...idx.match(topic)].sort((x, y) => x - y),
      want,
      topic,
    );
  }
});
