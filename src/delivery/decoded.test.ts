import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toRecord } from '../ingest/record.ts';
import type { LogRecord } from '../log/index.ts';
import { sampleDecision } from '../routing/test-fixtures.ts';
import { decodeRecord } from './decoded.ts';

const route = { topics: ['decisions.equity.pf-17', 'alerts'], key: 'pf-17', priority: 7 };

/** A record as read from the log's files (no memo). */
function stored(headers?: (h: Record<string, string>) => void): LogRecord {
  const d = { ...sampleDecision(), type: 'halt', expiresAt: '2026-11-27T16:00:00Z' } as never;
  const { memo: _memo, ...r } = toRecord(d, route, Date.now());
  const h = { ...r.headers };
  headers?.(h);
  return { ...r, headers: h, partition: 3, offset: 42 };
}

test('what delivery needs comes from the headers; the body is parsed on first read of decision', () => {
  const r = stored();
  assert.equal(r.headers['type'], 'halt');
  assert.equal(r.headers['expiresAt'], '2026-11-27T16:00:00Z');
  const d = decodeRecord(r)!;
  assert.equal(d.position, '3:42');
  assert.equal(d.type, 'halt');
  assert.equal(d.expiresAt, Date.parse('2026-11-27T16:00:00Z'));
  assert.equal(d.priority, 7);
  assert.equal(d.topicsJson, JSON.stringify(route.topics));
  assert.equal(d.keyJson, '"pf-17"');
  assert.equal(d.decision['type'], 'halt');
  assert.equal(d.decision, d.decision, 'parsed once');
  assert.equal(JSON.stringify(d.decision), d.payloadText);
});

test('a record stored before the type and expiresAt headers is parsed at once, with the same outcome', () => {
  const old = decodeRecord(
    stored((h) => {
      delete h['type'];
      delete h['expiresAt'];
    }),
  )!;
  const now = decodeRecord(stored())!;
  for (const k of [
    'type',
    'expiresAt',
    'decisionId',
    'revision',
    'priority',
    'position',
    'payloadText',
  ] as const)
    assert.deepEqual(old[k], now[k], k);
});

test('a payload that is not a JSON object: undefined without headers, an empty decision with them', () => {
  const bad = { ...stored(), payload: Buffer.from('[1]') };
  assert.equal(decodeRecord({ ...bad, headers: {} }), undefined);
  assert.deepEqual(decodeRecord(bad)?.decision, {});
});

test('a record the log served from memory: its text and decision are the ones ingest encoded, not decoded again', () => {
  const d = { ...sampleDecision(), type: 'halt', expiresAt: '2026-11-27T16:00:00Z' } as never;
  const r = toRecord(d, route, Date.now());
  const got = decodeRecord({ ...r, partition: 3, offset: 42 })!;
  assert.equal(got.payloadText, r.memo?.text, 'the same string');
  assert.equal(got.decision, d, 'the same object, not a parse of the payload');
  assert.equal(got.payloadText, Buffer.from(r.payload).toString('utf8'), 'and it is what was stored');
  assert.equal(got.type, 'halt');
  assert.equal(got.expiresAt, Date.parse('2026-11-27T16:00:00Z'));
});
