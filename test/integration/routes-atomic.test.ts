/**
 * Atomic activation (ADR 0013): batches are published continuously while new rule-set versions are
 * created and older ones re-activated. Every stored decision must carry one whole version, its topics
 * must be exactly that version's outcome, and every batch must be routed by one version.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { recordRoute, recordTopics } from '../../src/ingest/record.ts';

const set = (v: number) => ({
  rules: [
    { id: `even-${v}`, condition: 'decision.priority >= 5', topics: [`v${v}.even.{portfolioId}`] },
    { id: `all-${v}`, condition: 'true', topics: [`v${v}.all`], actions: { setPriority: v % 10 } },
  ],
  defaultRoute: `unused.v${v}`,
  comment: `tag ${v}`,
});

describe('rule-set activation while decisions flow', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp();
  });
  after(async () => t?.close());

  it('routes every decision and every batch by one whole version', async () => {
    /** stored version number -> the tag its rules carry */
    const tags = new Map<number, number>([[0, -1]]);
    let stop = false;
    let n = 0;
    const batches: string[][] = [];
    const publisher = async (w: number) => {
      while (!stop) {
        const batch = Array.from({ length: 40 }, () =>
          makeDecision(++n, {
            decisionId: `atomic-${w}-${n}`,
            portfolioId: `pf-${n % 5}`,
            priority: n % 10,
          } as never),
        );
        const r = await t.request('POST', '/v1/decisions', { body: batch });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        batches.push(batch.map((d) => (d as { decisionId: string }).decisionId));
      }
    };
    const workers = [publisher(1), publisher(2)];
    for (let i = 1; i <= 8; i++) {
      const r = await t.request('POST', '/v1/routes', { body: set(i) });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      tags.set(r.body.version, i);
      await new Promise((res) => setTimeout(res, 60));
      if (i % 3 === 0) {
        // roll back to an older version now and then
        const back = await t.request('POST', `/v1/routes/versions/${r.body.version - 2}:activate`);
        assert.equal(back.status, 200, JSON.stringify(back.body));
        await new Promise((res) => setTimeout(res, 40));
      }
    }
    stop = true;
    await Promise.all(workers);

    const versionOf = new Map<string, number>();
    const seenVersions = new Set<number>();
    let records = 0;
    for (const e of t.app.ctx.log.extents()) {
      for (let o = e.first; o < e.next;) {
        const recs = await t.app.ctx.log.read(e.partition, o, 1000);
        if (recs.length === 0) break;
        for (const rec of recs) {
          records++;
          const route = recordRoute(rec);
          assert.notEqual(route.ruleSet, undefined, 'every record names its version');
          const v = route.ruleSet as number;
          const tag = tags.get(v);
          assert.notEqual(tag, undefined, `version ${v} is one of the activated ones`);
          seenVersions.add(v);
          const d = JSON.parse(Buffer.from(rec.payload).toString('utf8')) as {
            decisionId: string;
            portfolioId: string;
            priority: number;
          };
          versionOf.set(d.decisionId, v);
          const topics = recordTopics(rec);
          if (v === 0) {
            assert.deepEqual(topics, [`decisions.equity.${d.portfolioId}`]);
            assert.deepEqual(route.rules, []);
            continue;
          }
          const even = d.priority >= 5;
          assert.deepEqual(
            topics,
            even ? [`v${tag}.even.${d.portfolioId}`, `v${tag}.all`] : [`v${tag}.all`],
            `${d.decisionId} under version ${v}`,
          );
          assert.deepEqual(route.rules, even ? [`even-${tag}`, `all-${tag}`] : [`all-${tag}`]);
          assert.equal(rec.headers['priority'], String((tag as number) % 10));
        }
        o = (recs[recs.length - 1] as { offset: number }).offset + 1;
      }
    }
    assert.equal(records, n, 'every published decision is stored');
    for (const b of batches) {
      const vs = new Set(b.map((id) => versionOf.get(id)));
      assert.equal(vs.size, 1, `one batch, one version: ${[...vs].join(',')}`);
    }
    process.stderr.write(
      `[routes-atomic] ${records} decisions in ${batches.length} batches under versions ${[...seenVersions].sort((x, y) => x - y).join(',')}\n`,
    );
    assert.ok(seenVersions.size >= 4, `decisions flowed under several versions (${[...seenVersions]})`);
  });
});
