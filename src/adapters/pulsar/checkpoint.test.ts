// Unit tests of checkpoints' pure parts: chunking a run index and putting it back together.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeChunk, fromChunks, toChunks } from './checkpoint.ts';
import type { CheckpointState } from './checkpoint.ts';
import type { Run } from './format.ts';
import { messageId } from './message-id.ts';
import { RunIndex } from './run-index.ts';

describe('checkpoint chunks', () => {
  const index = new RunIndex(1);
  for (let i = 0; i < 7; i++) index.add([3, i * 2, i % 2 === 0 ? 0 : -1, 1 + i, 10 * (1 + i)] as Run);
  index.dropBefore(4); // the runs of offsets 0..2 go; the run of 3..5 stays (whole runs only)
  const state: CheckpointState = {
    epoch: 'e-1',
    partitions: 2,
    upTo: messageId(9, 41),
    applied: [['w1', 12]],
    parts: [
      { p: 0, first: 0, base: 0, runs: [] },
      { p: 1, first: 4, ...index.held() },
    ],
  };

  it('splits the runs over chunks of at most maxRuns and joins them back unchanged', () => {
    const chunks = toChunks(state, 'cp', messageId(8, 2), 2);
    assert.equal(chunks.length, 3);
    assert.ok(chunks.every((c) => c.n === 3 && c.id === 'cp' && c.prev?.join() === '8,2'));
    assert.ok(chunks.every((c) => c.parts.reduce((n, p) => n + p.runs.length, 0) <= 2));
    assert.deepEqual(chunks[0]?.applied, [['w1', 12]]);
    assert.equal(chunks[1]?.applied, undefined);
    const back = fromChunks(chunks.map((c) => decodeChunk(Buffer.from(JSON.stringify(c))) ?? assert.fail()));
    assert.deepEqual(back, state);
  });

  it('a run index restarted from a checkpoint locates every offset as the original', () => {
    const [, part] = state.parts;
    const copy = new RunIndex(1);
    copy.restart(part!.base);
    for (const r of part!.runs) copy.add(r);
    assert.equal(copy.end, index.end);
    assert.deepEqual(copy.locate(4, index.end), index.locate(4, index.end));
    assert.deepEqual(copy.lowestIdFrom(4), index.lowestIdFrom(4));
  });

  it('anything that is not a chunk decodes to undefined', () => {
    for (const s of ['', 'null', '{"type":"commit"}', '{"type":"checkpoint","id":"x","i":0,"n":1}'])
      assert.equal(decodeChunk(Buffer.from(s)), undefined);
  });
});
