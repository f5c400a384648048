import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenBucket } from './rate-limit.ts';

describe('TokenBucket', () => {
  it('allows a burst of its capacity, then refuses with the wait until enough tokens exist', () => {
    const b = new TokenBucket(10, 10, 0);
    for (let i = 0; i < 10; i++) assert.equal(b.take(1, 0), 0);
    assert.ok(Math.abs(b.take(1, 0) - 0.1) < 1e-9);
    assert.equal(b.take(1, 100), 0, 'refilled after 100 ms');
  });

  it('lets a request larger than the capacity go once the bucket is full', () => {
    const b = new TokenBucket(5, 5, 0);
    assert.equal(b.take(20, 0), 0);
    assert.ok(b.take(1, 0) > 0);
  });
});
