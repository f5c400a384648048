/**
 * The EventLog contract suite (STYLE habit 2): every adapter runs it unchanged, from its own test
 * file, and lists the cases it skips with a reason. It assumes nothing about the number of
 * partitions, the first offset (a log may have been trimmed), or timing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isCdsError } from '../errors/index.ts';
import type { AppendRecord, Appended, EventLog } from './port.ts';
import {
  assertRecord,
  extentOf,
  payloadOf,
  readRange,
  recordOf,
  sameBytes,
  turn,
} from './contract-helpers.ts';

/** What an adapter's test gives the suite for one case: a fresh, empty log of its own. */
export interface ContractSubject {
  readonly log: EventLog;
  /** Opens the same log again after it was closed (durable adapters). */
  readonly reopen?: () => Promise<EventLog>;
  /** Removes what the case created; called after the suite closed every log it used. */
  readonly cleanup: () => Promise<void>;
}

/** Options of the suite. */
export interface ContractOptions {
  /** Case titles to skip, each with the reason printed in the test report. */
  readonly skip?: Record<string, string>;
}

/** Titles of the contract cases (keys of `ContractOptions.skip`). */
export const CONTRACT_CASES = [
  'append returns positions in input order',
  'offsets are dense and increasing per partition',
  'same key goes to the same partition',
  'read ranges',
  'readOne',
  'records round-trip byte for byte',
  'concurrent appends are all stored and ordered per key',
  'waitFor resolves on append',
  'waitFor rejects on abort',
  'trim never drops records at or after the bound',
  'extents and storedBytes',
  'close is idempotent and append after close rejects with SHUTTING_DOWN',
  'close completes appends already accepted',
  'reopen preserves records, extents and epoch',
  'a batch is atomic',
] as const;

type CaseTitle = (typeof CONTRACT_CASES)[number];

/** Registers the EventLog contract cases for one adapter under `describe(name)`. */
export function eventLogContract(
  name: string,
  open: () => Promise<ContractSubject>,
  opts: ContractOptions = {},
): void {
  for (const title of Object.keys(opts.skip ?? {})) {
    if (!(CONTRACT_CASES as readonly string[]).includes(title))
      throw new Error(`unknown contract case '${title}'`);
  }
  describe(`EventLog contract: ${name}`, () => {
    const test = (title: CaseTitle, fn: (s: ContractSubject, opened: EventLog[]) => Promise<void>) => {
      const reason = opts.skip?.[title];
      if (reason !== undefined) {
        it(title, { skip: reason }, () => undefined);
        return;
      }
      it(title, async () => {
        const s = await open();
        const opened: EventLog[] = [s.log];
        try {
          await fn(s, opened);
        } finally {
          for (const l of opened) await l.close();
          await s.cleanup();
        }
      });
    };
    const keys = (n: number) => Array.from({ length: n }, (_, i) => `key-${i}`);

    test('append returns positions in input order', async ({ log }) => {
      const recs = keys(6).map((k, i) => recordOf(k, `order-${i}`));
      const pos = await log.append(recs);
      assert.equal(pos.length, recs.length);
      for (let i = 0; i < recs.length; i++) {
        assert.equal(pos[i]!.partition, log.partitionOf(recs[i]!.key));
        assertRecord(await log.readOne(pos[i]!.partition, pos[i]!.offset), recs[i]!, pos[i]!);
      }
      assert.deepEqual(await log.append([]), []);
    });

    test('offsets are dense and increasing per partition', async ({ log }) => {
      const before = new Map(log.extents().map((e) => [e.partition, e.next]));
      const got = new Map<number, number[]>();
      for (let b = 0; b < 6; b++) {
        const pos = await log.append(keys(5).map((k, i) => recordOf(k, `dense-${b}-${i}`)));
        for (const p of pos) got.set(p.partition, [...(got.get(p.partition) ?? []), p.offset]);
      }
      for (const [partition, offsets] of got) {
        const start = before.get(partition);
        assert.ok(start !== undefined);
        assert.deepEqual(
          offsets,
          offsets.map((_, i) => start + i),
          `partition ${partition}`,
        );
        assert.equal(extentOf(log, partition).next, start + offsets.length);
      }
      for (const e of log.extents()) if (!got.has(e.partition)) assert.equal(e.next, before.get(e.partition));
    });

    test('same key goes to the same partition', async ({ log }) => {
      for (const k of keys(20)) {
        const p = log.partitionOf(k);
        assert.ok(Number.isInteger(p) && p >= 0 && p < log.partitions, `partitionOf(${k}) = ${p}`);
        assert.equal(log.partitionOf(k), p);
      }
      const seen: Appended[] = [];
      for (let i = 0; i < 5; i++) seen.push(...(await log.append([recordOf('same', `same-${i}`)])));
      for (const s of seen) assert.equal(s.partition, log.partitionOf('same'));
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.offset > seen[i - 1]!.offset);
    });

    test('read ranges', async ({ log }) => {
      const recs = Array.from({ length: 20 }, (_, i) => recordOf('range', `range-${i}`));
      const pos = await log.append(recs);
      const p = pos[0]!.partition;
      const o = pos[0]!.offset;
      const inside = await log.read(p, o + 5, 100);
      assert.equal(inside.length, 15);
      inside.forEach((r, i) => assertRecord(r, recs[5 + i]!, pos[5 + i]!));
      const limited = await log.read(p, o, 7);
      assert.equal(limited.length, 7);
      limited.forEach((r, i) => assertRecord(r, recs[i]!, pos[i]!));
      const { first, next } = extentOf(log, p);
      assert.deepEqual(await log.read(p, next, 10), []);
      assert.deepEqual(await log.read(p, next + 1000, 10), []);
      const fromBelow = await log.read(p, 0, 1);
      assert.equal(fromBelow[0]?.offset, first, 'reading below first starts at first');
      if (first > 0) assert.equal((await log.read(p, first - 1, 1))[0]?.offset, first);
    });

    test('readOne', async ({ log }) => {
      const [at] = await log.append([recordOf('one', 'one-0')]);
      assertRecord(await log.readOne(at!.partition, at!.offset), recordOf('one', 'one-0'), at!);
      const { next } = extentOf(log, at!.partition);
      assert.equal(await log.readOne(at!.partition, next), undefined);
      assert.equal(await log.readOne(at!.partition, next + 1000), undefined);
    });

    test('records round-trip byte for byte', async ({ log }) => {
      const big = payloadOf('big', 1024 * 1024);
      const recs: AppendRecord[] = [
        { key: 'rt', timestamp: 0, headers: {}, payload: new Uint8Array(0) },
        {
          key: 'rt',
          timestamp: 1_712_345_678_901,
          headers: { décision: 'ünïcödé ☃ 𝄞 中文', emoji: '🚀', empty: '', quote: '"\\\n' },
          payload: new TextEncoder().encode('{"ok":true,"s":"é"}'),
        },
        { key: 'rt', timestamp: Date.now(), headers: { size: '1MiB' }, payload: big },
        { key: 'clé-🔑', timestamp: 1, headers: { a: 'b' }, payload: payloadOf('bin', 256) },
      ];
      const pos = await log.append(recs);
      for (let i = 0; i < recs.length; i++) {
        assertRecord(await log.readOne(pos[i]!.partition, pos[i]!.offset), recs[i]!, pos[i]!);
        const [viaRead] = await log.read(pos[i]!.partition, pos[i]!.offset, 1);
        assertRecord(viaRead, recs[i]!, pos[i]!);
      }
    });

    test('concurrent appends are all stored and ordered per key', async ({ log }) => {
      const before = new Map(log.extents().map((e) => [e.partition, e.next]));
      const workers = 16;
      const rounds = 12;
      const acked: { rec: AppendRecord; at: Appended; worker: number; seq: number }[] = [];
      await Promise.all(
        Array.from({ length: workers }, async (_, w) => {
          for (let s = 0; s < rounds; s++) {
            const recs = Array.from({ length: 1 + ((w + s) % 3) }, (_, i) =>
              recordOf(`k${w % 4}`, `c-${w}-${s}-${i}`, 100),
            );
            const pos = await log.append(recs);
            assert.equal(pos.length, recs.length);
            recs.forEach((rec, i) => acked.push({ rec, at: pos[i]!, worker: w, seq: s * 10 + i }));
          }
        }),
      );
      const positions = new Set(acked.map((a) => `${a.at.partition}:${a.at.offset}`));
      assert.equal(positions.size, acked.length, 'every record has its own position');
      let stored = 0;
      for (const e of log.extents()) {
        const all = await readRange(log, e.partition, before.get(e.partition) ?? 0, e.next);
        stored += all.length;
      }
      assert.equal(stored, acked.length, 'nothing more, nothing less');
      for (const a of acked) assertRecord(await log.readOne(a.at.partition, a.at.offset), a.rec, a.at);
      // Records of one key appended one after another by one worker keep that order.
      for (let w = 0; w < workers; w++) {
        const mine = acked.filter((a) => a.worker === w).sort((x, y) => x.seq - y.seq);
        for (let i = 1; i < mine.length; i++) {
          assert.equal(mine[i]!.at.partition, mine[i - 1]!.at.partition);
          assert.ok(mine[i]!.at.offset > mine[i - 1]!.at.offset, `worker ${w} order`);
        }
      }
    });

    test('waitFor resolves on append', async ({ log }) => {
      const p = log.partitionOf('wait');
      const { next } = extentOf(log, p);
      let done = false;
      const waiting = log.waitFor(p, next).then(() => {
        done = true;
      });
      await turn();
      await turn();
      assert.equal(done, false, 'must not resolve before a record exists');
      await log.append([recordOf('wait', 'wait-0')]);
      await waiting;
      assert.equal(done, true);
      await log.waitFor(p, next); // already there: resolves at once
    });

    test('waitFor rejects on abort', async ({ log }) => {
      const p = log.partitionOf('abort');
      const { next } = extentOf(log, p);
      const ac = new AbortController();
      const waiting = log.waitFor(p, next + 1000, ac.signal);
      ac.abort(new Error('stop waiting'));
      await assert.rejects(waiting, /stop waiting/);
      const pre = AbortSignal.abort(new Error('already aborted'));
      await assert.rejects(log.waitFor(p, next + 1000, pre), /already aborted/);
    });

    test('trim never drops records at or after the bound', async ({ log }) => {
      const recs = Array.from({ length: 60 }, (_, i) => recordOf('trim', `trim-${i}`, 2048));
      const pos: Appended[] = [];
      for (const r of recs) pos.push(...(await log.append([r])));
      const p = pos[0]!.partition;
      const oldFirst = extentOf(log, p).first;
      const bound = pos[35]!.offset;
      const predicted = log.trimPoint(p, bound);
      assert.equal(extentOf(log, p).first, oldFirst, 'trimPoint trims nothing');
      const first = await log.trim(p, bound);
      assert.equal(first, predicted, 'trim leaves what trimPoint said');
      assert.ok(first <= bound && first >= oldFirst, `new first ${first} within [${oldFirst}, ${bound}]`);
      assert.equal(extentOf(log, p).first, first);
      for (let i = 35; i < recs.length; i++)
        assertRecord(await log.readOne(p, pos[i]!.offset), recs[i]!, pos[i]!);
      assert.equal((await log.read(p, 0, 1))[0]?.offset, first, 'reading below first starts at first');
      if (first > 0) assert.equal(await log.readOne(p, first - 1), undefined);
      assert.equal(await log.trim(p, bound), first, 'trimming again changes nothing');
      // Trimming past the tail keeps the offsets going (they never restart).
      const { next } = extentOf(log, p);
      const afterAll = await log.trim(p, next + 1000);
      assert.ok(afterAll <= next);
      const [again] = await log.append([recordOf('trim', 'trim-after')]);
      assert.equal(again!.offset, next);
      assertRecord(await log.readOne(p, next), recordOf('trim', 'trim-after'), again!);
    });

    test('extents and storedBytes', async ({ log }) => {
      const ext = log.extents();
      assert.equal(ext.length, log.partitions);
      assert.deepEqual(
        ext.map((e) => e.partition).sort((a, b) => a - b),
        Array.from({ length: log.partitions }, (_, i) => i),
      );
      for (const e of ext) assert.ok(e.first <= e.next);
      const bytes0 = log.storedBytes();
      assert.ok(bytes0 >= 0);
      await log.append([{ key: 'bytes', timestamp: 1, headers: {}, payload: payloadOf('mb', 1024 * 1024) }]);
      assert.ok(log.storedBytes() >= bytes0 + 1024 * 1024, 'storedBytes counts the payload');
    });

    test('close is idempotent and append after close rejects with SHUTTING_DOWN', async ({ log }) => {
      await log.append([recordOf('close', 'close-0')]);
      await Promise.all([log.close(), log.close()]);
      await log.close();
      await assert.rejects(log.append([recordOf('close', 'close-1')]), (e) => isCdsError(e, 'SHUTTING_DOWN'));
    });

    test('close completes appends already accepted', async ({ log, reopen }, opened) => {
      const recs = Array.from({ length: 20 }, (_, i) => recordOf(`cc-${i % 3}`, `cc-${i}`));
      const appends = recs.map((r) => log.append([r]));
      await log.close();
      const pos = (await Promise.all(appends)).map((x) => x[0]!);
      if (reopen !== undefined) {
        const again = await reopen();
        opened.push(again);
        for (let i = 0; i < recs.length; i++)
          assertRecord(await again.readOne(pos[i]!.partition, pos[i]!.offset), recs[i]!, pos[i]!);
      }
    });

    test('reopen preserves records, extents and epoch', async ({ log, reopen }, opened) => {
      if (reopen === undefined) return;
      assert.ok(typeof log.epoch === 'string' && log.epoch.length > 0);
      const recs = Array.from({ length: 30 }, (_, i) => recordOf(`ro-${i % 4}`, `ro-${i}`, 300));
      const pos = [...(await log.append(recs.slice(0, 10))), ...(await log.append(recs.slice(10)))];
      const epoch = log.epoch;
      const ext = log.extents();
      const bytes = log.storedBytes();
      await log.close();
      const again = await reopen();
      opened.push(again);
      assert.equal(again.epoch, epoch);
      assert.equal(again.partitions, log.partitions);
      assert.deepEqual(again.extents(), ext);
      assert.equal(again.storedBytes(), bytes);
      for (let i = 0; i < recs.length; i++)
        assertRecord(await again.readOne(pos[i]!.partition, pos[i]!.offset), recs[i]!, pos[i]!);
      const [more] = await again.append([recordOf('ro-0', 'ro-more')]);
      assert.equal(more!.offset, extentOf(again, more!.partition).next - 1);
      assert.equal(more!.offset, ext.find((e) => e.partition === more!.partition)!.next);
    });

    test('a batch is atomic', async ({ log }) => {
      // One batch of one key is contiguous even while others append to that key.
      const noise = Array.from({ length: 20 }, (_, i) => log.append([recordOf('atomic', `noise-${i}`)]));
      const batch = Array.from({ length: 10 }, (_, i) => recordOf('atomic', `batch-${i}`));
      const pos = await log.append(batch);
      await Promise.all(noise);
      for (let i = 1; i < pos.length; i++) assert.equal(pos[i]!.offset, pos[i - 1]!.offset + 1);
      // A batch with one bad record stores none of them.
      const before = log.extents();
      const bad: AppendRecord[] = [
        recordOf('atomic', 'bad-0'),
        { key: 'atomic', timestamp: 1, headers: { huge: 'x'.repeat(70 * 1024) }, payload: new Uint8Array(1) },
      ];
      await assert.rejects(log.append(bad));
      assert.deepEqual(log.extents(), before, 'nothing of a rejected batch is stored');
      const [ok] = await log.append([recordOf('atomic', 'after-bad')]);
      const p = log.partitionOf('atomic');
      assert.equal(ok!.offset, before.find((e) => e.partition === p)!.next);
      const stored = await log.readOne(ok!.partition, ok!.offset);
      assert.ok(stored !== undefined && sameBytes(stored.payload, recordOf('atomic', 'after-bad').payload));
    });
  });
}
