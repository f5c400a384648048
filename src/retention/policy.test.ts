/** Retention policy input: every bad field named, defaults filled in. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isCdsError } from '../errors/index.ts';
import { compareSpecificity, nameErrors, parsePolicy } from './policy.ts';

function fieldErrors(body: unknown): { path: string; code: string }[] {
  try {
    parsePolicy(body);
  } catch (e) {
    assert.ok(isCdsError(e) && e.code === 'VALIDATION_FAILED');
    return (e.details?.['errors'] as { path: string; code: string }[]).map(({ path, code }) => ({
      path,
      code,
    }));
  }
  assert.fail('accepted');
}

describe('parsePolicy', () => {
  it('accepts a pattern with limits, onUnacknowledged defaulting to wait', () => {
    assert.deepEqual(parsePolicy({ pattern: 'decisions.>', maxAgeMs: 1000, maxCount: 0 }), {
      limits: { pattern: 'decisions.>', maxAgeMs: 1000, maxCount: 0, onUnacknowledged: 'wait' },
    });
    assert.deepEqual(parsePolicy({ pattern: 'a.*', onUnacknowledged: 'drop', version: 2 }), {
      limits: { pattern: 'a.*', onUnacknowledged: 'drop' },
      version: 2,
    });
  });

  it('names every bad field', () => {
    assert.deepEqual(
      fieldErrors({
        pattern: 'a.>.b',
        maxAgeMs: -1,
        maxBytes: 1.5,
        maxCount: '3',
        onUnacknowledged: 'skip',
        x: 1,
      }),
      [
        { path: '/x', code: 'unknown_field' },
        { path: '/pattern', code: 'invalid_pattern' },
        { path: '/maxAgeMs', code: 'range' },
        { path: '/maxBytes', code: 'range' },
        { path: '/maxCount', code: 'range' },
        { path: '/onUnacknowledged', code: 'enum' },
      ],
    );
    assert.deepEqual(fieldErrors({}), [{ path: '/pattern', code: 'required' }]);
    assert.deepEqual(fieldErrors([1]), [{ path: '', code: 'type' }]);
    assert.deepEqual(fieldErrors({ pattern: '>', version: -1 }), [{ path: '/version', code: 'range' }]);
  });

  it('checks names', () => {
    assert.deepEqual(nameErrors('keep-7d.eq'), []);
    assert.equal(nameErrors('-x')[0]?.code, 'pattern');
    assert.equal(nameErrors('a/b')[0]?.code, 'pattern');
  });
});

describe('compareSpecificity', () => {
  it('a name beats *, * beats >, a longer pattern beats its prefix', () => {
    const sorted = ['>', 'a.>', 'a.*', 'a.b', 'a.b.>', '*.b', 'a.*.c'].sort(compareSpecificity);
    assert.deepEqual(sorted, ['a.b.>', 'a.b', 'a.*.c', 'a.*', 'a.>', '*.b', '>']);
  });
});
