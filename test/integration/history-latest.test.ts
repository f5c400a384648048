/**
 * The latest-revision view (ADR 0019): GET /v1/topics/{topic}/latest gives of each decision its last
 * revision on the topic, optionally without cancelled and expired ones, with the positions it is
 * current at; a subscription started at those positions then delivers exactly what came after, so
 * snapshot + live = every decision once per revision, ending at its latest, while publishing goes on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Decision } from '../../src/domain/decision.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import { createDecisionGenerator, testSeed } from '../helpers/decisions.ts';
import { createSub, fetchOnce, status } from '../model/harness.ts';

interface Item {
  decisionId: string;
  revision: number;
  position: string;
  topics: string[];
  expired?: true;
  decision: Decision;
}
interface View {
  epoch: string;
  positions: string[];
  items: Item[];
  count: number;
}

const PAST = '2020-01-01T00:00:00Z';
const offsetOf = (p: string) => Number(p.split(':')[1]);
const topicOf = (d: Decision) => `decisions.${d.instrument.assetClass}.${d.portfolioId}`;

describe('latest-revision view', { timeout: 180_000 }, () => {
  let t: TestApp;
  let url: string;
  const seed = testSeed('history-latest');
  const gen = createDecisionGenerator({ seed, portfolios: 10, idPrefix: 'lv' });
  /** Everything stored, in log order. */
  const stored: { d: Decision; position: string }[] = [];

  const publish = async (ds: Decision[]) => {
    const r = await t.request('POST', '/v1/decisions', { body: ds });
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 500));
    ds.forEach((d, i) => stored.push({ d, position: r.body.results[i].position }));
  };
  const view = async (path: string): Promise<View> => {
    const res = await fetch(`${url}/v1/topics/${path}`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    const text = await res.text();
    assert.equal(res.status, 200, text.slice(0, 300));
    return JSON.parse(text) as View;
  };
  /** The model: per decision, its last stored revision on a topic `pattern` matches, before `end`. */
  const model = (match: (topic: string) => boolean, end = Number.MAX_SAFE_INTEGER) => {
    const m = new Map<string, { d: Decision; position: string }>();
    for (const s of stored) if (offsetOf(s.position) < end && match(topicOf(s.d))) m.set(s.d.decisionId, s);
    return m;
  };

  before(async () => {
    t = await startTestApp();
    url = (await t.app.listen()).http;
    const first = gen.take(600).map((d, i) => (i % 7 === 0 ? { ...d, expiresAt: PAST } : d));
    for (let i = 0; i < first.length; i += 100) await publish(first.slice(i, i + 100));
    // Amendments (revision 2), then cancellations (revision 3) of some of them.
    await publish(first.slice(0, 120).map((d) => ({ ...d, revision: 2, priority: 9 })));
    await publish(
      first
        .slice(0, 30)
        .map((d) => ({
          ...d,
          revision: 3,
          type: 'cancel' as const,
          side: undefined,
          quantity: undefined,
          orderType: undefined,
          limitPrice: undefined,
          timeInForce: undefined,
        }))
        .map((d) => JSON.parse(JSON.stringify(d)) as Decision),
    );
  });
  after(() => t?.close());

  it('gives the last revision of each decision on the topic, in log order, with the positions it is current at', async () => {
    for (const pattern of ['decisions.>', 'decisions.equity.*', 'decisions.*.pf-3']) {
      const re = new RegExp(`^${pattern.replace(/\./g, '\\.').replace('*', '[^.]+').replace('>', '.+')}$`);
      const v = await view(`${encodeURIComponent(pattern)}/latest`);
      const want = [...model((tp) => re.test(tp)).values()].sort(
        (a, b) => offsetOf(a.position) - offsetOf(b.position),
      );
      assert.equal(v.epoch, t.app.ctx.log.epoch);
      assert.deepEqual(v.positions, [`0:${stored.length}`]);
      assert.equal(v.count, want.length);
      assert.deepEqual(
        v.items.map((i) => `${i.decisionId}@${i.revision}@${i.position}`),
        want.map((s) => `${s.d.decisionId}@${s.d.revision}@${s.position}`),
        `${pattern} (seed ${seed})`,
      );
      for (const i of v.items) assert.equal(i.expired === true, i.decision.expiresAt === PAST, i.position);
    }
  });

  it('leaves out cancelled and expired decisions when asked, and answers NDJSON when asked', async () => {
    const all = await view('decisions.%3E/latest');
    const noCancel = await view('decisions.%3E/latest?excludeCancelled=true');
    const noExpired = await view('decisions.%3E/latest?excludeExpired=true');
    const neither = await view('decisions.%3E/latest?excludeCancelled=true&excludeExpired=true');
    const ids = (v: View) => v.items.map((i) => i.position);
    assert.ok(all.items.some((i) => i.decision.type === 'cancel'));
    assert.ok(all.items.some((i) => i.expired === true));
    assert.deepEqual(
      ids(noCancel),
      ids({ ...all, items: all.items.filter((i) => i.decision.type !== 'cancel') }),
    );
    assert.deepEqual(ids(noExpired), ids({ ...all, items: all.items.filter((i) => i.expired !== true) }));
    assert.deepEqual(
      ids(neither),
      ids({ ...all, items: all.items.filter((i) => i.expired !== true && i.decision.type !== 'cancel') }),
    );
    const res = await fetch(`${url}/v1/topics/decisions.%3E/latest`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}`, accept: 'application/x-ndjson' },
    });
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    assert.equal(res.headers.get('x-cds-positions'), all.positions.join(','));
    const lines = (await res.text())
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Item);
    assert.deepEqual(lines, all.items);
    const unknown = await fetch(`${url}/v1/topics/nothing.%3E/latest`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    assert.equal(unknown.status, 404);
  });

  it('snapshot, then a subscription from its positions: every decision once per revision, ending at its latest, while publishing goes on', async () => {
    const more = createDecisionGenerator({ seed: seed + 1, portfolios: 10, idPrefix: 'lv2' });
    let publishing = true;
    const background = (async () => {
      for (let round = 0; publishing && round < 400; round++) {
        // New decisions, and amendments of ones stored before (some before the snapshot, some after).
        const pool = stored.filter((s) => s.d.type !== 'cancel').slice(-400);
        const amend = Array.from({ length: 10 }, (_, i) => pool[(round * 37 + i * 13) % pool.length]!)
          .filter((s, i, a) => a.findIndex((x) => x.d.decisionId === s.d.decisionId) === i)
          .map((s) => {
            const latest = [...stored].reverse().find((x) => x.d.decisionId === s.d.decisionId)!;
            return { ...latest.d, revision: latest.d.revision + 1, priority: (latest.d.priority + 1) % 10 };
          });
        await publish([...more.take(20), ...amend]);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const snap = await view('decisions.%3E/latest');
    const name = await createSub(t, {
      start: { positions: snap.positions },
      ackPolicy: 'auto',
      includeExpired: true, // the snapshot has expired ones too (marked)
    });
    await new Promise((r) => setTimeout(r, 300));
    publishing = false;
    await background;
    const end = offsetOf(snap.positions[0]!);
    assert.ok(
      end > 600 && end < stored.length,
      `the snapshot (${end}) was taken while publishing (${stored.length})`,
    );
    const wantLive = stored.filter((s) => offsetOf(s.position) >= end);
    const live: { decisionId: string; position: string; decision: Decision }[] = [];
    const deadline = Date.now() + 60_000;
    // An expedited revision (halt, cancel) supersedes a waiting earlier one of its decision (DESIGN 5).
    let superseded = 0;
    while (live.length + superseded < wantLive.length && Date.now() < deadline) {
      live.push(...((await fetchOnce(t, name, 1000, 200)) as unknown as typeof live));
      superseded = (await status(t, name)).counters.superseded;
    }
    // The snapshot holds what was before its positions; the subscription what came after, once each.
    for (const i of snap.items) assert.ok(offsetOf(i.position) < end);
    // Priority reorders across keys, so compare as sets, and check the order within each decision.
    const byOffset = (a: string, b: string) => offsetOf(a) - offsetOf(b);
    const delivered = new Set(live.map((d) => d.position));
    assert.equal(delivered.size, live.length, 'no position twice');
    const skipped = wantLive.filter((s) => !delivered.has(s.position));
    assert.equal(skipped.length, superseded, `seed ${seed}`);
    for (const s of skipped)
      assert.ok(
        live.some((d) => d.decision.decisionId === s.d.decisionId && d.decision.revision > s.d.revision),
        `${s.position} was superseded by a later revision`,
      );
    assert.deepEqual(
      live.map((d) => d.position).sort(byOffset),
      wantLive.filter((s) => delivered.has(s.position)).map((s) => s.position),
    );
    const lastRev = new Map<string, number>();
    for (const d of live) {
      assert.ok((lastRev.get(d.decision.decisionId) ?? 0) < d.decision.revision, d.position);
      lastRev.set(d.decision.decisionId, d.decision.revision);
    }
    const seen = new Set<string>();
    for (const x of [...snap.items, ...live.map((d) => d.decision)]) {
      const k = `${x.decisionId}@${x.revision}`;
      assert.ok(!seen.has(k), `${k} twice`);
      seen.add(k);
    }
    // Applying the live deliveries onto the snapshot gives every decision at its latest revision.
    const state = new Map(snap.items.map((i) => [i.decisionId, i.decision]));
    for (const d of live) state.set(d.decision.decisionId, d.decision);
    const latest = model(() => true);
    assert.equal(state.size, latest.size);
    for (const [id, s] of latest) assert.deepEqual(state.get(id), s.d, id);
  });
});
