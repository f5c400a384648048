import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LogRecord } from '../log/index.ts';
import { ChunkWriter, expiresAtOf, LineEncoder } from './lines.ts';

const json = (o: unknown) => Buffer.from(JSON.stringify(o));

describe('history lines', () => {
  it('finds the top-level expiresAt, never an attribute of that name', () => {
    assert.equal(expiresAtOf(json({ a: 1, expiresAt: '2026-01-01T00:00:00Z' })), '2026-01-01T00:00:00Z');
    assert.equal(
      expiresAtOf(
        json({
          attributes: { expiresAt: '1999-01-01T00:00:00Z', q: '"}{' },
          expiresAt: '2030-01-01T00:00:00Z',
        }),
      ),
      '2030-01-01T00:00:00Z',
    );
    assert.equal(expiresAtOf(json({ attributes: { x: 'y', expiresAt: '1999-01-01T00:00:00Z' } })), undefined);
    assert.equal(
      expiresAtOf(json({ expiresAt: '2031-01-01T00:00:00Z', attributes: { expiresAt: 'x' } })),
      '2031-01-01T00:00:00Z',
    );
    assert.equal(expiresAtOf(json({ note: '"expiresAt":"2000-01-01T00:00:00Z"' })), undefined);
    assert.equal(expiresAtOf(json({ type: 'trade' })), undefined);
  });

  it('writes the envelope, the payload unchanged and the expired mark; selects by topics', () => {
    const decision = { decisionId: 'd-1', revision: 2, expiresAt: '2026-01-01T00:00:00Z', note: 'é"\\' };
    const rec = (topics: string, headers: Record<string, string> = {}): LogRecord => ({
      partition: 0,
      offset: 7,
      key: 'pf-1',
      timestamp: Date.parse('2026-01-01T00:00:00Z'),
      headers: { decisionId: 'd-1', revision: '2', priority: '5', topics, ...headers },
      payload: json(decision),
    });
    const enc = new LineEncoder({
      epoch: 'e1',
      now: Date.parse('2026-06-01T00:00:00Z'),
      select: (t) => t.some((x) => x.startsWith('a.')),
    });
    const out = new ChunkWriter(16);
    assert.equal(enc.encode(rec('b.x'), out), false);
    assert.equal(enc.encode(rec(''), out), false);
    assert.equal(enc.encode(rec('b.x a.y'), out), true);
    // A record with the type header carries expiresAt in a header when it has one: none here.
    assert.equal(enc.encode(rec('a.y', { type: 'trade' }), out), true);
    const [first, second, rest] = out.take().toString('utf8').split('\n');
    assert.deepEqual(JSON.parse(first!), {
      decisionId: 'd-1',
      revision: 2,
      position: '0:7',
      epoch: 'e1',
      key: 'pf-1',
      topics: ['b.x', 'a.y'],
      priority: 5,
      receivedAt: '2026-01-01T00:00:00.000Z',
      expired: true,
      decision,
    });
    assert.equal(JSON.parse(second!).expired, undefined);
    assert.equal(rest, '');
    assert.equal(out.length, 0);
  });
});
