/**
 * Topic names and patterns (DESIGN 4): dot-separated tokens; in patterns `*` matches exactly one
 * token and `>` (last token only) matches one or more remaining tokens, as in NATS.
 */
import type { FieldError } from '../errors/index.ts';

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** Field errors of a topic name (empty when valid). */
export function topicErrors(topic: string, path = 'topic'): FieldError[] {
  if (topic.length === 0 || topic.length > 255) {
    return [{ path, code: 'invalid_topic', message: 'a topic has 1 to 255 characters' }];
  }
  const bad = topic.split('.').findIndex((t) => !TOKEN.test(t));
  if (bad >= 0) {
    return [
      {
        path,
        code: 'invalid_topic',
        message: `token ${bad + 1} of '${topic}' is empty or has characters other than A-Z a-z 0-9 _ -`,
      },
    ];
  }
  return [];
}

/** Field errors of a topic pattern (empty when valid). */
export function patternErrors(pattern: string, path = 'pattern'): FieldError[] {
  if (pattern.length === 0 || pattern.length > 255) {
    return [{ path, code: 'invalid_pattern', message: 'a pattern has 1 to 255 characters' }];
  }
  const tokens = pattern.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (t === '*') continue;
    if (t === '>') {
      if (i !== tokens.length - 1)
        return [{ path, code: 'invalid_pattern', message: "'>' may only be the last token" }];
      continue;
    }
    if (!TOKEN.test(t)) {
      return [
        {
          path,
          code: 'invalid_pattern',
          message: `token ${i + 1} of '${pattern}' is not a name, '*' or '>'`,
        },
      ];
    }
  }
  return [];
}

/** Whether a topic matches a (valid) pattern. */
export function topicMatches(pattern: string, topic: string): boolean {
  const p = pattern.split('.');
  const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    const pt = p[i];
    if (pt === '>') return t.length > i;
    if (i >= t.length) return false;
    if (pt !== '*' && pt !== t[i]) return false;
  }
  return p.length === t.length;
}

/** Whether two (valid) patterns match at least one topic in common (a scope check on a pattern). */
export function patternsOverlap(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; ; i++) {
    if (i === x.length || i === y.length) return x.length === y.length;
    const s = x[i];
    const t = y[i];
    // Both have a token here; '>' takes this one and any after it.
    if (s === '>' || t === '>') return true;
    if (s !== '*' && t !== '*' && s !== t) return false;
  }
}
