// Unit tests of the Pulsar adapter's pure parts: key hashing, message ids, the record format and runs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isCdsError } from '../../errors/index.ts';
import { checkRecord, decodeEntry, encodeEntry, fromMessage, toMessage, toRuns } from './format.ts';
import { murmur3_32, partitionOfKey } from './hash.ts';
import { compareMessageIds, decodeMessageId, encodeMessageId, justBefore, messageId } from './message-id.ts';
import { RunIndex } from './run-index.ts';

describe('Pulsar key hash', () => {
  it('is MurmurHash3 x86_32 with seed 0 (reference vectors)', () => {
    const h = (s: string) => murmur3_32(Buffer.from(s, 'utf8')) >>> 0;
    assert.equal(h(''), 0);
    assert.equal(h('hello'), 0x248bfa47);
    assert.equal(h('The quick brown fox jumps over the lazy dog'), 0x2e4ff723);
  });
  it('maps keys to stable partitions in range', () => {
    for (const k of ['a', 'pf-17', 'clé-🔑', '']) {
      const p = partitionOfKey(k, 7);
      assert.ok(p >= 0 && p < 7);
      assert.equal(partitionOfKey(k, 7), p);
    }
  });
});

describe('message ids', () => {
  it('round-trip through base64 MessageIdData and order by ledger, entry, batch index', () => {
    const ids = [
      messageId(5, 0),
      messageId(5, 12, 3, 2),
      { ...messageId(1234567890123, 99, 0, 0), batchSize: 4 },
    ];
    for (const id of ids) assert.deepEqual(decodeMessageId(encodeMessageId(id)), id);
    assert.ok(compareMessageIds(messageId(5, 1), messageId(6, 0)) < 0);
    assert.ok(compareMessageIds(messageId(5, 1, 2), messageId(5, 1, 1)) > 0);
    assert.deepEqual(justBefore(messageId(5, 3, 2)), messageId(5, 3, 1));
    assert.deepEqual(justBefore(messageId(5, 3, 0)), messageId(5, 2));
    assert.deepEqual(decodeMessageId(encodeMessageId(messageId(5, -1))).entryId, -1);
  });
});

describe('record format', () => {
  it('keeps headers, key and timestamp; adds key and cds.* properties for readers', () => {
    const rec = {
      key: 'pf-1',
      timestamp: 0,
      headers: { decisionId: 'd', empty: '' },
      payload: Buffer.from('{}'),
    };
    const m = toMessage(rec, 'w:1');
    assert.equal(m.properties?.key, 'pf-1');
    assert.equal(m.properties?.['cds.batch'], 'w:1');
    const back = fromMessage({ payload: m.payload, properties: m.properties ?? {}, key: m.key });
    assert.deepEqual(back.headers, rec.headers);
    assert.equal(back.key, 'pf-1');
    assert.equal(back.timestamp, 0);
    const withKey = toMessage({ ...rec, headers: { key: 'pf-1' } }, 'w:2');
    assert.deepEqual(
      fromMessage({ payload: withKey.payload, properties: withKey.properties ?? {}, key: 'pf-1' }).headers,
      {
        key: 'pf-1',
      },
    );
  });
  it('refuses what Pulsar properties cannot carry, before anything is sent', () => {
    const base = { key: 'k', timestamp: 1, payload: new Uint8Array(1) };
    const bad: Record<string, string>[] = [
      { 'cds.ts': 'x' },
      { big: 'x'.repeat(70 * 1024) },
      { bad: '\ud800' },
    ];
    for (const headers of bad)
      assert.throws(
        () => checkRecord({ ...base, headers }, 0, 1024),
        (e) => isCdsError(e, 'VALIDATION_FAILED'),
      );
    assert.throws(() => checkRecord({ ...base, headers: {}, payload: new Uint8Array(2000) }, 0, 1024));
  });
  it('packs ids into runs and the run index maps offsets back', () => {
    const ids = [
      messageId(7, 3, 0),
      messageId(7, 3, 1),
      messageId(7, 3, 2),
      messageId(7, 4),
      messageId(7, 5),
      messageId(8, 0, 0),
    ];
    const runs = toRuns(ids.map((id) => ({ id, bytes: 10 })));
    assert.deepEqual(runs, [
      [7, 3, 0, 3, 30],
      [7, 4, -1, 2, 20],
      [8, 0, 0, 1, 10],
    ]);
    const idx = new RunIndex(2);
    for (const r of runs) idx.add(r);
    assert.equal(idx.end, 6);
    assert.deepEqual(
      idx.locate(2, 5).map((l) => [l.offset, l.id.ledgerId, l.id.entryId, l.id.batchIndex]),
      [
        [2, 7, 3, 2],
        [3, 7, 4, -1],
        [4, 7, 5, -1],
      ],
    );
    assert.equal(idx.bytes, 60);
    idx.dropBefore(4);
    assert.equal(idx.bytes, 30, 'whole runs before the first offset are dropped');
    assert.equal(idx.idAt(1), undefined);
    assert.deepEqual(idx.lowestIdFrom(4), { ...messageId(7, 5, -1, 2) });
  });
  it('encodes and decodes commit-topic records, skipping unknown ones', () => {
    const e = { type: 'commit', v: 1, batch: 'w:3', parts: [{ p: 0, runs: [[1, 2, -1, 1, 9]] }] } as const;
    assert.deepEqual(decodeEntry(encodeEntry(e)), e);
    assert.equal(decodeEntry(Buffer.from('{"type":"future"}')), undefined);
    assert.equal(decodeEntry(Buffer.from('not json')), undefined);
  });
});
