import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { topicMatches } from '../../domain/topics.ts';
import { topicPatternRegex } from './topic-regex.ts';

// JavaScript's RegExp agrees with ARE on the constructs used (anchors, `[^.]*`, `.*`, `\.`, `\-`);
// the integration test checks the same cases against PostgreSQL itself.
const js = (pattern: string): RegExp => new RegExp(topicPatternRegex(pattern));

describe('topicPatternRegex', () => {
  const topics = ['a', 'a.b', 'a.b.c', 'a.x.c', 'b.b.c', 'a-1.b_2', 'a..c', 'a.', 'ab.c', 'a.bc', 'x.a.b'];
  const patterns = [
    'a',
    '>',
    '*',
    'a.>',
    'a.*',
    '*.b',
    'a.*.c',
    '*.*.*',
    'a.b.>',
    'a-1.*',
    '*.>',
    'a.b',
    'x.>',
  ];
  for (const p of patterns) {
    it(`matches what topicMatches matches: ${p}`, () => {
      for (const t of topics) assert.equal(js(p).test(t), topicMatches(p, t), `${p} vs ${t}`);
    });
  }
});
