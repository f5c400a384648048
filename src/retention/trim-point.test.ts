/** The trim point: the record-by-record definition, and the chunked computation agreeing with it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PolicySet, type CompiledPolicy } from './policy.ts';
import { chunkedTrimPoint, PartitionTally, trimPointOf, type RecordFacts } from './trim-point.ts';

const NOW = 1_000_000;

function facts(set: PolicySet, rows: readonly [ts: number, bytes: number, topics: string[]][], from = 0) {
  return rows.map(([ts, bytes, topics], i): RecordFacts => ({
    offset: from + i,
    timestamp: ts,
    bytes,
    policies: set.of(topics),
  }));
}

const policy = (name: string, pattern: string, l: Partial<CompiledPolicy> = {}): CompiledPolicy => ({
  name,
  pattern,
  onUnacknowledged: 'wait',
  ...l,
});

describe('trimPointOf (record by record)', () => {
  it('age: records older than maxAgeMs go, from the oldest up to the first young one', () => {
    const set = new PolicySet([policy('all', '>', { maxAgeMs: 100 })], 1);
    const recs = facts(set, [
      [NOW - 500, 10, ['a.b']],
      [NOW - 101, 10, ['a.b']],
      [NOW - 100, 10, ['a.b']],
      [NOW - 500, 10, ['a.b']], // older again (a clock step back) but behind a kept one
    ]);
    assert.equal(trimPointOf(recs, set.policies, NOW, 4), 2);
  });

  it('count and bytes are counted per policy from the newest back', () => {
    const set = new PolicySet([policy('c', 'x.>', { maxCount: 2 }), policy('b', 'y.>', { maxBytes: 25 })], 1);
    // x: offsets 0, 2, 4 -> 0 goes (2 newer x records); y: 1 (10 B), 3 (10 B), 5 (10 B) -> 1 goes (20 newer bytes? no: 25 needed)
    const recs = facts(set, [
      [NOW, 1, ['x.1']],
      [NOW, 10, ['y.1']],
      [NOW, 1, ['x.1']],
      [NOW, 10, ['y.1']],
      [NOW, 1, ['x.1']],
      [NOW, 10, ['y.1']],
    ]);
    assert.equal(trimPointOf(recs, set.policies, NOW, 6), 1, 'y.1 at offset 1 has only 20 newer bytes');
    const more = facts(
      set,
      [...Array(4)].map(() => [NOW, 10, ['y.1']] as [number, number, string[]]),
      6,
    );
    assert.equal(trimPointOf([...recs, ...more], set.policies, NOW, 10), 2);
  });

  it('a decision is kept while any of its topics keeps it', () => {
    const set = new PolicySet([policy('short', 'a.>', { maxAgeMs: 0 })], 1);
    const recs = facts(set, [
      [NOW - 10, 1, ['a.1']],
      [NOW - 10, 1, ['a.1', 'b.1']], // b.1 has no policy: kept for ever
      [NOW - 10, 1, ['a.1']],
    ]);
    assert.equal(trimPointOf(recs, set.policies, NOW, 3), 1);
  });

  it('the most specific pattern governs a topic', () => {
    const set = new PolicySet(
      [
        policy('all', '>', { maxAgeMs: 0 }),
        policy('keep', 'decisions.audit.>'),
        policy('mid', 'decisions.*.x'),
      ],
      1,
    );
    assert.equal(set.policies[set.governing('decisions.audit.x')]?.name, 'keep');
    assert.equal(set.policies[set.governing('decisions.eq.x')]?.name, 'mid');
    assert.equal(set.policies[set.governing('other')]?.name, 'all');
    assert.equal(set.policies[set.of([])[0] as number]?.name, 'all', 'no topics: the catch-all');
    const recs = facts(set, [
      [NOW - 10, 1, ['decisions.eq.y']],
      [NOW - 10, 1, ['decisions.audit.y']],
    ]);
    assert.equal(trimPointOf(recs, set.policies, NOW, 2), 1);
  });

  it('no policy at all keeps everything; no topics without a catch-all keeps it', () => {
    const none = new PolicySet([], 1);
    assert.equal(trimPointOf(facts(none, [[0, 1, ['a']]]), none.policies, NOW, 1), 0);
    const some = new PolicySet([policy('a', 'a', { maxCount: 0 })], 1);
    assert.equal(
      trimPointOf(
        facts(some, [
          [0, 1, ['a']],
          [0, 1, []],
        ]),
        some.policies,
        NOW,
        2,
      ),
      1,
    );
  });
});

describe('chunkedTrimPoint', () => {
  /** mulberry32: a small seeded generator. */
  function rng(seed: number) {
    return () => {
      seed |= 0;
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it('agrees with the record-by-record definition on random logs, chunk sizes and first offsets', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)] as T;
      const maybe = (v: number) => (r() < 0.5 ? v : undefined);
      const policies: CompiledPolicy[] = [];
      for (const pattern of ['>', 'a.>', 'a.*', 'b.c', 'b.*']) {
        if (r() < 0.4) continue;
        const l = {
          maxAgeMs: maybe(Math.floor(r() * 400)),
          maxCount: maybe(Math.floor(r() * 30)),
          maxBytes: maybe(Math.floor(r() * 600)),
        };
        policies.push(
          policy(pattern, pattern, Object.fromEntries(Object.entries(l).filter(([, v]) => v !== undefined))),
        );
      }
      const set = new PolicySet(policies, 1);
      const n = Math.floor(r() * 120);
      const base = Math.floor(r() * 5);
      let ts = NOW - 500;
      const rows: [number, number, string[]][] = [];
      for (let i = 0; i < n; i++) {
        ts += Math.floor(r() * 10) - (r() < 0.05 ? 20 : 0); // mostly ascending, sometimes a step back
        const k = Math.floor(r() * 3);
        rows.push([
          ts,
          1 + Math.floor(r() * 40),
          [...Array(k)].map(() => pick(['a.x', 'a.y', 'a.x.z', 'b.c', 'b.d', 'q'])),
        ]);
      }
      const recs = facts(set, rows, base);
      const first = base + Math.floor(r() * Math.min(4, n + 1));
      const tally = new PartitionTally(base, 1 + Math.floor(r() * 16));
      for (const f of recs) tally.add(f);
      const live = recs.filter((f) => f.offset >= first);
      const want = trimPointOf(live, set.policies, NOW, base + n);
      const got = await chunkedTrimPoint(tally, set.policies, NOW, first, async (from, to) =>
        recs.filter((f) => f.offset >= from && f.offset < to),
      );
      assert.equal(got, Math.max(first, want), `seed ${seed}`);
    }
  });

  it('reads only the boundary chunk again', async () => {
    const set = new PolicySet([policy('all', '>', { maxCount: 10 })], 1);
    const recs = facts(
      set,
      [...Array(100)].map(() => [NOW, 5, ['t']] as [number, number, string[]]),
    );
    const tally = new PartitionTally(0, 8);
    for (const f of recs) tally.add(f);
    const reads: [number, number][] = [];
    const got = await chunkedTrimPoint(tally, set.policies, NOW, 0, async (from, to) => {
      reads.push([from, to]);
      return recs.slice(from, to);
    });
    assert.equal(got, 90);
    assert.deepEqual(reads, [[88, 96]]);
  });
});
