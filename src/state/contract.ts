/**
 * The StateStore contract suite (STYLE habit 2): `node:test` cases that every adapter passes
 * unchanged. An adapter's test file calls `stateStoreContract(name, open)`; a case it cannot pass is
 * listed in `opts.skip` with the reason.
 *
 * The cases assume nothing about the store's prior content (a shared PostgreSQL database may hold
 * other tests' rows): every id, field value, topic, partition and time window is unique per case, and
 * audit checks are relative to the last record found before the case ran.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { chainNext, findChainBreak, type AuditEvent, type AuditRecord } from '../domain/audit.ts';
import { topicMatches } from '../domain/topics.ts';
import { isCdsError } from '../errors/index.ts';
import type { DecisionIndexEntry, DecisionQuery, Principal, QueryMark, StateStore } from './port.ts';

/** What an adapter's `open` gives the suite. */
export interface ContractSubject {
  /** A store ready for use. */
  readonly store: StateStore;
  /** Opens the same store again after the suite closed it (omit if the adapter cannot; the reopen case is then skipped). */
  readonly reopen?: () => Promise<StateStore>;
  /** Removes what `open` created; called after the suite closed every store it got. */
  readonly cleanup: () => Promise<void>;
}

/** Registers the contract cases for one adapter; `opts.skip` maps a case title to the reason it is skipped. */
export function stateStoreContract(
  name: string,
  open: () => Promise<ContractSubject>,
  opts: { skip?: Record<string, string> } = {},
): void {
  const skip = opts.skip ?? {};
  const test = (title: string, fn: () => Promise<void>): void => {
    const reason = skip[title];
    it(title, reason === undefined ? {} : { skip: reason }, fn);
  };

  describe(`StateStore contract: ${name}`, () => {
    let subject: ContractSubject;
    let store: StateStore;
    before(async () => {
      subject = await open();
      store = subject.store;
    });
    after(async () => {
      await store?.close();
      await subject?.cleanup();
    });

    // ------------------------------------------------------------ principals

    test('principals: create, get and findByKeyHash return what was stored', async () => {
      const p = principal({ rateLimits: { requestsPerSecond: 5, decisionsPerSecond: 100 } });
      await store.principals.create(p);
      assert.deepEqual(await store.principals.get(p.id), p);
      assert.deepEqual(await store.principals.findByKeyHash(p.keyHash), p);
      const bare = principal();
      await store.principals.create(bare);
      assert.deepEqual(await store.principals.get(bare.id), bare);
    });

    test('principals: unknown id or key hash is undefined', async () => {
      assert.equal(await store.principals.get(`key_${uid()}`), undefined);
      assert.equal(await store.principals.findByKeyHash(hex64()), undefined);
      assert.equal(await store.principals.revoke(`key_${uid()}`, new Date().toISOString()), undefined);
    });

    test('principals: a duplicate id or key hash is ALREADY_EXISTS and stores nothing', async () => {
      const p = principal();
      await store.principals.create(p);
      const sameId = principal({ id: p.id });
      await assert.rejects(store.principals.create(sameId), (e) => isCdsError(e, 'ALREADY_EXISTS'));
      assert.equal(await store.principals.findByKeyHash(sameId.keyHash), undefined);
      const sameKey = principal({ keyHash: p.keyHash });
      await assert.rejects(store.principals.create(sameKey), (e) => isCdsError(e, 'ALREADY_EXISTS'));
      assert.equal(await store.principals.get(sameKey.id), undefined);
      assert.deepEqual(await store.principals.findByKeyHash(p.keyHash), p);
    });

    test('principals: list is ordered by createdAt then id', async () => {
      const u = uid();
      const a = principal({ id: `key_${u}_b`, createdAt: '2001-01-01T00:00:02.000Z' });
      const b = principal({ id: `key_${u}_a`, createdAt: '2001-01-01T00:00:02.000Z' });
      const c = principal({ id: `key_${u}_c`, createdAt: '2001-01-01T00:00:01.000Z' });
      for (const p of [a, b, c]) await store.principals.create(p);
      const all = await store.principals.list();
      assert.deepEqual(
        all.filter((p) => p.id.startsWith(`key_${u}_`)).map((p) => p.id),
        [c.id, b.id, a.id],
      );
      for (let i = 1; i < all.length; i++) {
        const x = all[i - 1] as Principal;
        const y = all[i] as Principal;
        assert.ok(
          x.createdAt < y.createdAt || (x.createdAt === y.createdAt && x.id < y.id),
          `${x.id} before ${y.id}`,
        );
      }
    });

    test('principals: revoke keeps the first time and a revoked principal is still found', async () => {
      const p = principal();
      await store.principals.create(p);
      const first = await store.principals.revoke(p.id, '2030-01-01T00:00:00.000Z');
      assert.deepEqual(first, { ...p, revokedAt: '2030-01-01T00:00:00.000Z' });
      const again = await store.principals.revoke(p.id, '2031-01-01T00:00:00.000Z');
      assert.equal(again?.revokedAt, '2030-01-01T00:00:00.000Z');
      assert.equal((await store.principals.get(p.id))?.revokedAt, '2030-01-01T00:00:00.000Z');
      assert.equal((await store.principals.findByKeyHash(p.keyHash))?.revokedAt, '2030-01-01T00:00:00.000Z');
      assert.ok((await store.principals.list()).some((x) => x.id === p.id && x.revokedAt !== undefined));
    });

    // ------------------------------------------------------------ audit

    test('audit: append chains each record to the last one', async () => {
      const before = await store.audit.last();
      const events = [auditEvent('one'), auditEvent('two'), auditEvent('three')];
      const recs = await store.audit.append(events);
      assert.equal(recs.length, 3);
      const base = before?.seq ?? 0;
      assert.deepEqual(
        recs.map((r) => r.seq),
        [base + 1, base + 2, base + 3],
      );
      recs.forEach((r, i) => {
        const ev = events[i] as AuditEvent;
        assert.deepEqual({ actor: r.actor, action: r.action, target: r.target, details: r.details }, ev);
        const prev = i === 0 ? before : recs[i - 1];
        assert.deepEqual(r, chainNext(prev, ev, new Date(r.at)));
      });
      assert.equal(findChainBreak(recs, before === undefined ? {} : { prev: before }), undefined);
      assert.deepEqual(await store.audit.last(), recs[2]);
      assert.deepEqual(await store.audit.list(base, 10), recs.slice(0, Math.min(10, recs.length)));
      assert.deepEqual(await store.audit.append([]), []);
    });

    test('audit: concurrent appends from many callers form one chain without gaps', async () => {
      const sizes = Array.from({ length: 25 }, (_, i) => 1 + (i % 3));
      const results = await Promise.all(
        sizes.map((n, i) =>
          store.audit.append(Array.from({ length: n }, (_, j) => auditEvent(`c${i}.${j}`))),
        ),
      );
      assert.deepEqual(
        results.map((r) => r.length),
        sizes,
      );
      const mine = results.flat();
      assert.equal(new Set(mine.map((r) => r.seq)).size, mine.length, 'no seq given twice');
      for (const r of results)
        for (let i = 1; i < r.length; i++)
          assert.equal((r[i] as AuditRecord).seq, (r[i - 1] as AuditRecord).seq + 1);
      const all = await readWholeTrail(store);
      assert.equal(findChainBreak(all), undefined);
      all.forEach((r, i) => assert.equal(r.seq, i + 1));
      const bySeq = new Map(all.map((r) => [r.seq, r]));
      for (const r of mine) assert.deepEqual(bySeq.get(r.seq), r);
    });

    test('audit: list pages ascending by seq', async () => {
      await store.audit.append(Array.from({ length: 7 }, (_, i) => auditEvent(`p${i}`)));
      const last = (await store.audit.last()) as AuditRecord;
      const from = last.seq - 7;
      const p1 = await store.audit.list(from, 3);
      const p2 = await store.audit.list(from + 3, 3);
      const p3 = await store.audit.list(from + 6, 3);
      assert.deepEqual(
        [...p1, ...p2, ...p3].map((r) => r.seq),
        [1, 2, 3, 4, 5, 6, 7].map((i) => from + i),
      );
      assert.deepEqual(await store.audit.list(last.seq, 5), []);
      assert.deepEqual(await store.audit.list(from, 0), []);
    });

    // ------------------------------------------------------------ decision index

    test('decisions: add stores entries and the checkpoint, revisions ascending, get latest or by revision', async () => {
      const u = uid();
      const [p1, p2] = [uniquePartition(), uniquePartition()];
      const t = timeBase();
      const a1 = entry({ decisionId: `a-${u}`, revision: 1, partition: p1, offset: 0, receivedAt: t });
      const b1 = entry({ decisionId: `b-${u}`, revision: 1, partition: p2, offset: 0, receivedAt: t + 1 });
      const a2 = entry({
        decisionId: `a-${u}`,
        revision: 2,
        partition: p1,
        offset: 1,
        receivedAt: t + 2,
        type: 'amend',
      });
      await store.decisions.add([a1, b1, a2], { [p1]: 2, [p2]: 1 });
      const cp = await store.decisions.checkpoint();
      assert.equal(cp[p1], 2);
      assert.equal(cp[p2], 1);
      await store.decisions.add([], { [p1]: 5 });
      assert.equal((await store.decisions.checkpoint())[p1], 5);
      const revs = await store.decisions.revisions([`a-${u}`, `b-${u}`, `none-${u}`]);
      assert.deepEqual([...revs.keys()].sort(), [`a-${u}`, `b-${u}`]);
      assert.deepEqual(revs.get(`a-${u}`), [
        { revision: 1, partition: p1, offset: 0 },
        { revision: 2, partition: p1, offset: 1 },
      ]);
      assert.deepEqual(revs.get(`b-${u}`), [{ revision: 1, partition: p2, offset: 0 }]);
      assert.deepEqual(await store.decisions.get(`a-${u}`), a2);
      assert.deepEqual(await store.decisions.get(`a-${u}`, 1), a1);
      assert.equal(await store.decisions.get(`a-${u}`, 3), undefined);
      assert.equal(await store.decisions.get(`none-${u}`), undefined);
    });

    test('decisions: revisions stay ascending when indexed out of revision order', async () => {
      const u = uid();
      const p = uniquePartition();
      const t = timeBase();
      await store.decisions.add(
        [entry({ decisionId: `d-${u}`, revision: 3, partition: p, offset: 0, receivedAt: t })],
        {},
      );
      await store.decisions.add(
        [entry({ decisionId: `d-${u}`, revision: 1, partition: p, offset: 1, receivedAt: t + 1 })],
        {},
      );
      const revs = await store.decisions.revisions([`d-${u}`]);
      assert.deepEqual(
        revs.get(`d-${u}`)?.map((r) => r.revision),
        [1, 3],
      );
      assert.equal((await store.decisions.get(`d-${u}`))?.revision, 3);
    });

    test('decisions: re-adding an indexed decisionId and revision is a no-op', async () => {
      const u = uid();
      const p = uniquePartition();
      const t = timeBase();
      const e = entry({ decisionId: `d-${u}`, revision: 1, partition: p, offset: 0, receivedAt: t });
      const before = await store.decisions.counts();
      await store.decisions.add([e, { ...e, offset: 1 }], { [p]: 2 });
      const mid = await store.decisions.counts();
      assert.deepEqual(mid, { revisions: before.revisions + 1, decisions: before.decisions + 1 });
      await store.decisions.add([{ ...e, offset: 9, receivedAt: t + 9, type: 'other' }], { [p]: 10 });
      assert.deepEqual(await store.decisions.counts(), mid);
      assert.deepEqual(await store.decisions.get(`d-${u}`), e);
      assert.deepEqual(
        await store.decisions.revisions([`d-${u}`]),
        new Map([[`d-${u}`, [{ revision: 1, partition: p, offset: 0 }]]]),
      );
      assert.equal((await store.decisions.checkpoint())[p], 10);
      const page = await store.decisions.query({ fromTime: t, toTime: t + 100 }, { limit: 10, order: 'asc' });
      assert.deepEqual(page.entries, [e]);
    });

    test('decisions: counts count revisions and distinct decisions', async () => {
      const d = dataset();
      const before = await store.decisions.counts();
      await addAll(store, d.entries);
      assert.deepEqual(await store.decisions.counts(), {
        revisions: before.revisions + d.entries.length,
        decisions: before.decisions + new Set(d.entries.map((e) => e.decisionId)).size,
      });
    });

    test('decisions: query by each filter alone', async () => {
      const d = dataset();
      await addAll(store, d.entries);
      const sample = d.entries[5] as DecisionIndexEntry;
      const exact: DecisionQuery[] = [
        { portfolioId: sample.portfolioId },
        { strategyId: sample.strategyId },
        { symbol: sample.symbol },
        { assetClass: sample.assetClass },
        { type: sample.type },
        { verdict: sample.verdict },
        { fromTime: d.t0 + 3 * STEP, toTime: d.t0 + 9 * STEP, latestOnly: false },
        { fromTime: d.t0 + 9 * STEP, toTime: d.t0 + 13 * STEP },
        { topic: `${d.topicRoot}.*.x1` },
        { topic: `${d.topicRoot}.>` },
        { topic: `${d.topicRoot}.alpha.*` },
        { topic: `${d.topicRoot}.beta.x1` },
        { portfolioId: sample.portfolioId, latestOnly: false },
      ];
      for (const q of exact) {
        const want = reference(d.entries, q, 'asc');
        assert.ok(want.length > 0, `dataset has matches for ${JSON.stringify(q)}`);
        assert.deepEqual(await queryAll(store, q, 'asc', 1000), want, JSON.stringify(q));
      }
      // Priority alone also sees other cases' entries: check ours are all there and everything matches.
      const q = { minPriority: 7, maxPriority: 8 };
      const got = await queryAll(store, q, 'asc', 500);
      assert.ok(got.every((e) => e.priority >= 7 && e.priority <= 8));
      const keys = new Set(got.map(markKey));
      for (const e of reference(d.entries, q, 'asc'))
        assert.ok(keys.has(markKey(e)), `missing ${e.decisionId}`);
      assert.deepEqual(await queryAll(store, { portfolioId: `none-${uid()}` }, 'asc', 10), []);
    });

    test('decisions: query with combined filters', async () => {
      const d = dataset();
      await addAll(store, d.entries);
      const s = d.entries[11] as DecisionIndexEntry;
      const qs: DecisionQuery[] = [
        { portfolioId: s.portfolioId, assetClass: s.assetClass },
        { portfolioId: s.portfolioId, type: s.type, verdict: s.verdict },
        { symbol: s.symbol, minPriority: 3 },
        { strategyId: s.strategyId, maxPriority: 5, fromTime: d.t0 + 2 * STEP },
        { assetClass: s.assetClass, topic: `${d.topicRoot}.>`, toTime: d.t0 + 12 * STEP },
        { fromTime: d.t0, toTime: d.end, minPriority: 2, maxPriority: 6, latestOnly: false },
        { verdict: s.verdict, strategyId: s.strategyId, symbol: s.symbol, latestOnly: false },
        { portfolioId: s.portfolioId, strategyId: `none-${uid()}` },
      ];
      for (const q of qs) {
        for (const order of ['asc', 'desc'] as const) {
          assert.deepEqual(
            await queryAll(store, q, order, 1000),
            reference(d.entries, q, order),
            `${order} ${JSON.stringify(q)}`,
          );
        }
      }
    });

    test('decisions: latestOnly keeps only the highest revision (default) or all', async () => {
      const d = dataset();
      await addAll(store, d.entries);
      const window = { fromTime: d.t0, toTime: d.end };
      const latest = await queryAll(store, window, 'asc', 1000);
      assert.deepEqual(latest, reference(d.entries, window, 'asc'));
      assert.deepEqual(await queryAll(store, { ...window, latestOnly: true }, 'asc', 1000), latest);
      const all = await queryAll(store, { ...window, latestOnly: false }, 'asc', 1000);
      assert.equal(all.length, d.entries.length);
      assert.ok(latest.length < all.length, 'the dataset has amended decisions');
      assert.equal(new Set(latest.map((e) => e.decisionId)).size, latest.length);
    });

    test('decisions: asc is (receivedAt, partition, offset) order and desc its reverse', async () => {
      const d = dataset();
      await addAll(store, d.entries);
      const q = { fromTime: d.t0, toTime: d.end, latestOnly: false };
      const asc = await queryAll(store, q, 'asc', 1000);
      for (let i = 1; i < asc.length; i++)
        assert.ok(compareMarks(asc[i - 1] as QueryMark, asc[i] as QueryMark) < 0);
      const desc = await queryAll(store, q, 'desc', 1000);
      assert.deepEqual(desc, [...asc].reverse());
      const byIndex = await queryAll(
        store,
        { portfolioId: (d.entries[0] as DecisionIndexEntry).portfolioId, latestOnly: false },
        'desc',
        1000,
      );
      for (let i = 1; i < byIndex.length; i++)
        assert.ok(compareMarks(byIndex[i - 1] as QueryMark, byIndex[i] as QueryMark) > 0);
    });

    test('decisions: query time range is fromTime inclusive, toTime exclusive', async () => {
      const d = dataset();
      await addAll(store, d.entries);
      const q = { fromTime: d.t0 + 4 * STEP, toTime: d.t0 + 6 * STEP, latestOnly: false };
      const got = await queryAll(store, q, 'asc', 1000);
      assert.deepEqual([...new Set(got.map((e) => e.receivedAt))], [d.t0 + 4 * STEP, d.t0 + 5 * STEP]);
      assert.deepEqual(got, reference(d.entries, q, 'asc'));
      const pf = (d.entries[0] as DecisionIndexEntry).portfolioId;
      assert.deepEqual(
        await queryAll(store, { ...q, portfolioId: pf }, 'desc', 1000),
        reference(d.entries, { ...q, portfolioId: pf }, 'desc'),
      );
    });

    test('decisions: paging with next covers every entry once, in both orders', async () => {
      const d = dataset();
      await addAll(store, d.entries);
      const pf = (d.entries[0] as DecisionIndexEntry).portfolioId;
      const qs: DecisionQuery[] = [
        { fromTime: d.t0, toTime: d.end, latestOnly: false },
        { fromTime: d.t0, toTime: d.end },
        { portfolioId: pf, latestOnly: false },
      ];
      for (const q of qs) {
        for (const order of ['asc', 'desc'] as const) {
          const want = reference(d.entries, q, order);
          for (const limit of [1, 4, 7]) {
            const pages = await pagesOf(store, q, order, limit);
            assert.ok(pages.length >= Math.ceil(want.length / limit), 'several pages');
            assert.ok(
              pages.every((p) => p.length <= limit),
              'no page over the limit',
            );
            assert.deepEqual(pages.flat(), want, `${order} limit ${limit} ${JSON.stringify(q)}`);
          }
        }
      }
      // An `after` mark outside the time window starts at the window's edge.
      const q = { fromTime: d.t0 + 5 * STEP, toTime: d.t0 + 9 * STEP, latestOnly: false };
      const first = await store.decisions.query(q, {
        limit: 1000,
        order: 'asc',
        after: { receivedAt: d.t0, partition: 0, offset: 0 },
      });
      assert.deepEqual(first.entries, reference(d.entries, q, 'asc'));
      const firstDesc = await store.decisions.query(q, {
        limit: 1000,
        order: 'desc',
        after: { receivedAt: d.t0 + 500 * STEP, partition: 0, offset: 0 },
      });
      assert.deepEqual(firstDesc.entries, reference(d.entries, q, 'desc'));
    });

    test('decisions: scanLimit returns partial pages with next set, and paging still covers everything', async () => {
      const d = dataset();
      await addAll(store, d.entries);
      const q = { fromTime: d.t0, toTime: d.end, minPriority: 9, latestOnly: false };
      const want = reference(d.entries, q, 'asc');
      assert.ok(want.length > 0 && want.length < d.entries.length / 4, 'a selective query');
      const first = await store.decisions.query(q, { limit: 100, order: 'asc', scanLimit: 5 });
      assert.ok(first.entries.length < 100, 'a partial page');
      assert.notEqual(first.next, undefined, 'with next set');
      for (const order of ['asc', 'desc'] as const) {
        const pages = await pagesOf(store, q, order, 100, 5);
        assert.ok(pages.length > 2);
        assert.deepEqual(pages.flat(), reference(d.entries, q, order));
      }
    });

    // ------------------------------------------------------------ meta

    test('decisions: trim forgets the entries of a partition below the bound, and only those', async () => {
      const u = uid();
      const [p1, p2] = [uniquePartition(), uniquePartition()];
      const t = timeBase();
      const es = [0, 1, 2, 3].map((o) =>
        entry({
          decisionId: `t${o % 2}-${u}`,
          revision: 1 + (o >> 1),
          partition: p1,
          offset: o,
          receivedAt: t + o,
        }),
      );
      const other = entry({ decisionId: `t9-${u}`, revision: 1, partition: p2, offset: 0, receivedAt: t });
      await store.decisions.add([...es, other], { [p1]: 4, [p2]: 1 });
      await store.decisions.trim(p1, 2);
      await store.decisions.trim(p1, 1); // a lower bound changes nothing
      assert.equal(await store.decisions.get(`t0-${u}`, 1), undefined);
      assert.deepEqual(await store.decisions.get(`t0-${u}`), es[2]);
      assert.deepEqual((await store.decisions.revisions([`t1-${u}`])).get(`t1-${u}`), [
        { revision: 2, partition: p1, offset: 3 },
      ]);
      assert.deepEqual(await store.decisions.get(`t9-${u}`), other, 'another partition keeps its entries');
      const page = await store.decisions.query(
        { fromTime: t, toTime: t + 10, latestOnly: false },
        { limit: 10, order: 'asc' },
      );
      assert.deepEqual(
        page.entries.map((e) => `${e.partition}:${e.offset}`),
        [`${p2}:0`, `${p1}:2`, `${p1}:3`],
      );
      await store.decisions.trim(p1, 4);
      assert.equal((await store.decisions.revisions([`t0-${u}`, `t1-${u}`])).size, 0);
    });

    test('decisions: a trimmed decision published again is indexed anew, at its new position', async () => {
      const u = uid();
      const p = uniquePartition();
      const t = timeBase();
      const first = entry({ decisionId: `again-${u}`, revision: 1, partition: p, offset: 0, receivedAt: t });
      await store.decisions.add([first], { [p]: 1 });
      await store.decisions.trim(p, 1);
      assert.equal(await store.decisions.get(`again-${u}`), undefined);
      // Retention removed it, so idempotency no longer holds it: the same revision is stored anew.
      const again = { ...first, offset: 1, receivedAt: t + 5 };
      await store.decisions.add([again], { [p]: 2 });
      assert.deepEqual(await store.decisions.get(`again-${u}`), again);
      assert.deepEqual(await store.decisions.get(`again-${u}`, 1), again);
      assert.deepEqual((await store.decisions.revisions([`again-${u}`])).get(`again-${u}`), [
        { revision: 1, partition: p, offset: 1 },
      ]);
      for (const latestOnly of [true, false]) {
        const page = await store.decisions.query(
          { fromTime: t, toTime: t + 10, portfolioId: first.portfolioId, latestOnly },
          { limit: 10, order: 'asc' },
        );
        assert.deepEqual(
          page.entries.filter((e) => e.decisionId === `again-${u}`),
          [again],
          `latestOnly ${latestOnly}`,
        );
      }
    });

    test('meta: get, set and overwrite', async () => {
      const k = `k-${uid()}`;
      assert.equal(await store.meta.get(k), undefined);
      await store.meta.set(k, 'v1');
      assert.equal(await store.meta.get(k), 'v1');
      await store.meta.set(k, '');
      assert.equal(await store.meta.get(k), '');
    });

    // ------------------------------------------------------------ lifecycle

    test('close is idempotent', async () => {
      const other = await open();
      await Promise.all([other.store.close(), other.store.close()]);
      await other.store.close();
      await other.cleanup();
    });

    test('reopen preserves everything', async () => {
      if (subject.reopen === undefined) return;
      const p = principal();
      await store.principals.create(p);
      await store.principals.revoke(p.id, '2030-01-01T00:00:00.000Z');
      await store.audit.append([auditEvent('before-reopen')]);
      const lastBefore = (await store.audit.last()) as AuditRecord;
      const d = dataset();
      const part = uniquePartition();
      await store.decisions.add(d.entries, { [part]: 42 });
      const k = `k-${uid()}`;
      await store.meta.set(k, 'kept');
      const countsBefore = await store.decisions.counts();
      const window = { fromTime: d.t0, toTime: d.end, latestOnly: false };
      await store.close();
      store = await subject.reopen();
      assert.equal((await store.principals.get(p.id))?.revokedAt, '2030-01-01T00:00:00.000Z');
      assert.equal((await store.principals.findByKeyHash(p.keyHash))?.id, p.id);
      assert.deepEqual(await store.audit.last(), lastBefore);
      const [next] = await store.audit.append([auditEvent('after-reopen')]);
      assert.equal(next?.seq, lastBefore.seq + 1);
      assert.equal(next?.prevHash, lastBefore.hash);
      assert.equal(findChainBreak(await readWholeTrail(store)), undefined);
      assert.deepEqual(await store.decisions.counts(), countsBefore);
      assert.equal((await store.decisions.checkpoint())[part], 42);
      assert.deepEqual(await queryAll(store, window, 'asc', 1000), reference(d.entries, window, 'asc'));
      const id = (d.entries[0] as DecisionIndexEntry).decisionId;
      assert.deepEqual(
        await store.decisions.get(id),
        reference(d.entries, { latestOnly: true }, 'asc').find((e) => e.decisionId === id),
      );
      assert.equal(await store.meta.get(k), 'kept');
    });
  });
}

// ---------------------------------------------------------------- helpers

/** Spacing of a dataset's receivedAt values (ms). */
const STEP = 37;

function uid(): string {
  return `${Date.now().toString(36)}${randomBytes(5).toString('hex')}`;
}

function hex64(): string {
  return randomBytes(32).toString('hex');
}

/** A partition number no other case uses (checkpoints are global per partition). */
function uniquePartition(): number {
  return 1000 + randomBytes(3).readUIntBE(0, 3);
}

/** A receivedAt window of 1,000,000 ms no other case (or earlier run on a shared store) uses: years 2033 to 2500. */
function timeBase(): number {
  return 2_000_000_000_000 + randomBytes(3).readUIntBE(0, 3) * 1_000_000;
}

function principal(over: Partial<Principal> = {}): Principal {
  return {
    id: `key_${uid()}`,
    name: 'contract',
    scopes: ['publish:decisions.>', 'subscribe:decisions.equity.*'],
    keyHash: hex64(),
    keyPrefix: 'cds_abcd',
    createdAt: new Date().toISOString(),
    ...over,
  };
}

function auditEvent(target: string): AuditEvent {
  return {
    actor: 'system',
    action: 'contract.test',
    target,
    details: { n: 1, nested: { ok: true }, list: ['a'] },
  };
}

function entry(
  over: Partial<DecisionIndexEntry> & Pick<DecisionIndexEntry, 'decisionId'>,
): DecisionIndexEntry {
  return {
    revision: 1,
    partition: 0,
    offset: 0,
    receivedAt: timeBase(),
    portfolioId: 'pf',
    strategyId: 'st',
    symbol: 'AAPL',
    assetClass: 'equity',
    type: 'trade',
    verdict: 'approved',
    priority: 5,
    topics: ['decisions.equity.pf'],
    ...over,
  };
}

/**
 * 60 entries of 20 decisions (3 revisions each, interleaved), in log order, in a unique time window:
 * receivedAt in steps of STEP ms over about half a second, several entries per millisecond and per
 * partition, some out of receivedAt order; field values and topics unique to the case.
 */
function dataset(): { entries: DecisionIndexEntry[]; t0: number; end: number; topicRoot: string } {
  const u = uid();
  const t0 = timeBase();
  const topicRoot = `t${u}`;
  const entries: DecisionIndexEntry[] = [];
  const revs = new Map<number, number>();
  const offsets = [0, 0, 0];
  for (let i = 0; i < 60; i++) {
    const j = (i * 7) % 20; // decision number: revisions interleave with other decisions
    const revision = (revs.get(j) ?? 0) + 1;
    revs.set(j, revision);
    const partition = j % 3;
    const offset = offsets[partition] as number;
    offsets[partition] = offset + 1;
    entries.push({
      decisionId: `d-${u}-${j}`,
      revision,
      partition,
      offset,
      // Every 8th entry arrives late (receivedAt earlier than entries logged before it).
      receivedAt: t0 + STEP * Math.max(0, Math.floor(i / 4) - (i % 8 === 7 ? 3 : 0)),
      portfolioId: `pf-${u}-${j % 3}`,
      strategyId: `st-${u}-${j % 4}`,
      symbol: `sym-${u}-${j % 5}`,
      assetClass: `ac-${u}-${j % 2}`,
      type: `ty-${u}-${i % 3}`,
      verdict: `v-${u}-${i % 2}`,
      priority: i % 10,
      topics:
        i % 4 === 0
          ? [`${topicRoot}.alpha.x${j % 2}`, `${topicRoot}.beta.x1`]
          : [`${topicRoot}.alpha.x${j % 2}`],
    });
  }
  return { entries, t0, end: t0 + 100_000, topicRoot };
}

/** Adds a dataset in three batches, as the ingest path would. */
async function addAll(store: StateStore, entries: readonly DecisionIndexEntry[]): Promise<void> {
  for (let i = 0; i < entries.length; i += 20) await store.decisions.add(entries.slice(i, i + 20), {});
}

/** What a query must return, computed by brute force over a dataset. */
function reference(
  entries: readonly DecisionIndexEntry[],
  q: DecisionQuery,
  order: 'asc' | 'desc',
): DecisionIndexEntry[] {
  const top = new Map<string, number>();
  for (const e of entries) top.set(e.decisionId, Math.max(top.get(e.decisionId) ?? 0, e.revision));
  const out = entries.filter(
    (e) =>
      (q.portfolioId === undefined || e.portfolioId === q.portfolioId) &&
      (q.strategyId === undefined || e.strategyId === q.strategyId) &&
      (q.symbol === undefined || e.symbol === q.symbol) &&
      (q.assetClass === undefined || e.assetClass === q.assetClass) &&
      (q.type === undefined || e.type === q.type) &&
      (q.verdict === undefined || e.verdict === q.verdict) &&
      (q.minPriority === undefined || e.priority >= q.minPriority) &&
      (q.maxPriority === undefined || e.priority <= q.maxPriority) &&
      (q.fromTime === undefined || e.receivedAt >= q.fromTime) &&
      (q.toTime === undefined || e.receivedAt < q.toTime) &&
      (q.topic === undefined || e.topics.some((t) => topicMatches(q.topic as string, t))) &&
      (q.latestOnly === false || top.get(e.decisionId) === e.revision),
  );
  out.sort(compareMarks);
  return order === 'asc' ? out : out.reverse();
}

function compareMarks(a: QueryMark, b: QueryMark): number {
  return a.receivedAt - b.receivedAt || a.partition - b.partition || a.offset - b.offset;
}

function markKey(m: QueryMark): string {
  return `${m.receivedAt}/${m.partition}/${m.offset}`;
}

/** Every page of a query, following `next`; fails on a repeated entry or a runaway loop. */
async function pagesOf(
  store: StateStore,
  q: DecisionQuery,
  order: 'asc' | 'desc',
  limit: number,
  scanLimit?: number,
): Promise<DecisionIndexEntry[][]> {
  const pages: DecisionIndexEntry[][] = [];
  const seen = new Set<string>();
  let after: QueryMark | undefined;
  for (let i = 0; i < 100_000; i++) {
    const page = await store.decisions.query(q, {
      limit,
      order,
      ...(after === undefined ? {} : { after }),
      ...(scanLimit === undefined ? {} : { scanLimit }),
    });
    for (const e of page.entries) {
      assert.ok(!seen.has(markKey(e)), `entry ${markKey(e)} returned twice`);
      seen.add(markKey(e));
    }
    pages.push(page.entries);
    if (page.next === undefined) return pages;
    assert.ok(
      after === undefined || compareMarks(page.next, after) * (order === 'asc' ? 1 : -1) > 0,
      'next moves forward',
    );
    after = page.next;
  }
  throw new Error('query paging did not end');
}

async function queryAll(
  store: StateStore,
  q: DecisionQuery,
  order: 'asc' | 'desc',
  limit: number,
): Promise<DecisionIndexEntry[]> {
  return (await pagesOf(store, q, order, limit)).flat();
}

async function readWholeTrail(store: StateStore): Promise<AuditRecord[]> {
  const all: AuditRecord[] = [];
  for (;;) {
    const page = await store.audit.list(all.length === 0 ? 0 : (all[all.length - 1] as AuditRecord).seq, 500);
    if (page.length === 0) return all;
    all.push(...page);
  }
}
