import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32 } from '../../test/helpers/decisions.ts';
import { resolvedAndDelivered } from './recorder.ts';

type Pending = [offset: number, deliveryCount: number][];

/** The definition, offset by offset: what resolved and what was first delivered between two commits. */
function reference(prev: { next: number; pending: Pending }, now: { next: number; pending: Pending }) {
  const before = new Map(prev.pending);
  const after = new Map(now.pending);
  const r: number[] = [];
  const d: number[] = [];
  const lo = Math.min(...prev.pending.map((p) => p[0]), prev.next);
  for (let o = lo; o < now.next; o++) {
    if ((before.has(o) || o >= prev.next) && !after.has(o)) r.push(o);
    if ((after.get(o) ?? 0) > 0 && (before.get(o) ?? 0) === 0) d.push(o);
  }
  return { r, d };
}

/** Flat half-open ranges to the offsets they cover. */
function offsets(flat: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < flat.length; i += 2) for (let o = flat[i]!; o < flat[i + 1]!; o++) out.push(o);
  return out;
}

test('one merge of the two pending lists gives, offset by offset, what resolved and what was first delivered', () => {
  const rand = mulberry32(20261127);
  for (let round = 0; round < 2_000; round++) {
    const floor = Math.floor(rand() * 50);
    const prevNext = floor + Math.floor(rand() * 40);
    const next = prevNext + Math.floor(rand() * 40);
    const prev: Pending = [];
    for (let o = floor; o < prevNext; o++) if (rand() < 0.5) prev.push([o, Math.floor(rand() * 3)]);
    const now: Pending = [];
    for (const [o, n] of prev) if (rand() < 0.6) now.push([o, n + (rand() < 0.3 ? 1 : 0)]);
    for (let o = prevNext; o < next; o++) if (rand() < 0.5) now.push([o, Math.floor(rand() * 2)]);
    const got = resolvedAndDelivered({ next: prevNext, pending: prev }, { next, pending: now });
    const want = reference({ next: prevNext, pending: prev }, { next, pending: now });
    assert.deepEqual(offsets(got.r.flat), want.r, `round ${round}: resolved`);
    assert.deepEqual(offsets(got.d.flat), want.d, `round ${round}: first delivered`);
    // Ranges come merged: no two adjacent ranges touch.
    for (const f of [got.r.flat, got.d.flat])
      for (let i = 2; i < f.length; i += 2) assert.ok(f[i]! > f[i - 1]!, `round ${round}: ranges merged`);
  }
});
