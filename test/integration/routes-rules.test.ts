/**
 * Routing rules at ingest over REST (DESIGN 4; ADR 0013): every action, ordered evaluation with stop
 * and continue, versions with activation, rollback and audit, dry-runs, explain, and bad input.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeDecision } from '../helpers/decisions.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';

let seq = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 6)}`;

describe('routing rules over REST', () => {
  let t: TestApp;
  let n = 0;
  /** A fresh decision (unique id) for portfolio `pf`. */
  const decision = (pf: string, extra: Record<string, unknown> = {}) =>
    makeDecision(++n, { decisionId: uniq('d'), portfolioId: pf, ...extra } as never);
  const publish = async (d: unknown) => {
    const r = await t.request('POST', '/v1/decisions', { body: d });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const put = async (body: Record<string, unknown>) => {
    const r = await t.request('POST', '/v1/routes', { body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  const route = async (id: string) => {
    const r = await t.request('GET', `/v1/decisions/${id}/route`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };

  const RULES = [
    {
      id: 'urgent',
      condition: 'decision.portfolioId == "pf-urgent"',
      topics: ['urgent.{portfolioId}'],
      actions: { setPriority: 9 },
    },
    { id: 'desk', condition: 'decision.attributes.desk == "eq-us"', topics: ['desk.{attributes.desk}'] },
    { id: 'stopper', condition: 'decision.portfolioId == "pf-stop"', topics: ['stopped.here'], stop: true },
    {
      id: 'after-stop',
      condition: 'decision.portfolioId == "pf-stop" || decision.portfolioId == "pf-go"',
      topics: ['after.stop'],
    },
    { id: 'rekey', condition: 'decision.portfolioId == "pf-key"', actions: { setKey: '{accountId}' } },
    { id: 'dropper', condition: 'decision.portfolioId == "pf-drop"', actions: { drop: true } },
    {
      id: 'quarantiner',
      condition: 'decision.portfolioId == "pf-quar"',
      actions: { quarantine: 'review.quarantine' },
    },
    {
      id: 'holder',
      condition: 'decision.portfolioId == "pf-hold"',
      actions: { holdUntil: '2030-01-01T00:00:00Z' },
    },
    { id: 'delayer', condition: 'decision.portfolioId == "pf-delay"', actions: { delayMs: 60000 } },
  ];
  let v1 = 0;

  before(async () => {
    t = await startTestApp();
    const r = await t.request('GET', '/v1/routes');
    assert.equal(r.body.version, 0, 'the built-in set before any change');
    assert.equal(r.body.builtIn, true);
    v1 = (await put({ rules: RULES, comment: 'first' })).version;
  });
  after(async () => t?.close());

  it('every action: priority, key, drop, quarantine, hold, delay; topics in rule order; default route otherwise', async () => {
    const urgent = await publish(decision('pf-urgent'));
    assert.deepEqual(urgent.topics, ['urgent.pf-urgent', 'desk.eq-us']);
    const u = await t.request('GET', `/v1/decisions/${urgent.decisionId}`);
    assert.equal(u.body.priority, 9);

    const plain = await publish(decision('pf-plain', { attributes: { desk: 'fx' } }));
    assert.deepEqual(plain.topics, ['decisions.equity.pf-plain'], 'no rule gave topics: the default route');

    const keyed = await publish(decision('pf-key', { accountId: 'acc-42' }));
    assert.equal((await t.request('GET', `/v1/decisions/${keyed.decisionId}`)).body.key, 'acc-42');

    const dropped = await publish(decision('pf-drop'));
    assert.equal(dropped.dropped, true);
    assert.deepEqual(dropped.topics, []);
    const again = await publish(
      (await t.request('GET', `/v1/decisions/${dropped.decisionId}`)).body.decision,
    );
    assert.equal(again.duplicate, true);
    assert.equal(again.dropped, true, 'a duplicate of a dropped decision says so too');

    const q = await publish(decision('pf-quar'));
    assert.equal(q.quarantined, true);
    assert.deepEqual(q.topics, ['review.quarantine'], 'quarantined: only the quarantine topic');

    const held = await route((await publish(decision('pf-hold'))).decisionId);
    assert.equal(held.holdUntil, '2030-01-01T00:00:00.000Z');
    const before = Date.now();
    const delayed = await route((await publish(decision('pf-delay'))).decisionId);
    const until = Date.parse(delayed.holdUntil);
    assert.ok(until >= before + 60000 && until <= Date.now() + 60000, delayed.holdUntil);
  });

  it('delivery: a dropped decision reaches nobody, a quarantined one only the review topic', async () => {
    const live = uniq('live-all');
    const review = uniq('review');
    const sub = async (name: string, topics: string[], start: string) => {
      const r = await t.request('POST', '/v1/subscriptions', { body: { name, topics, start } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    };
    await sub(live, ['>'], 'latest');
    await sub(review, ['review.>'], 'latest');
    const dropped = await publish(decision('pf-drop'));
    const quarantined = await publish(decision('pf-quar'));
    const marker = await publish(decision('pf-plain'));
    const late = uniq('late-all');
    await sub(late, ['>'], 'earliest'); // reads the log on its own (catch-up), not the tail
    const fetchIds = async (name: string, until: string) => {
      const ids: string[] = [];
      const end = Date.now() + 5000;
      while (!ids.includes(until) && Date.now() < end) {
        const f = await t.request('POST', `/v1/subscriptions/${name}/fetch`, {
          body: { max: 1000, waitMs: 200 },
        });
        assert.equal(f.status, 200, JSON.stringify(f.body));
        for (const d of f.body.deliveries) ids.push(d.decision.decisionId);
      }
      return ids;
    };
    for (const name of [live, late]) {
      const ids = await fetchIds(name, marker.decisionId);
      assert.ok(ids.includes(marker.decisionId), name);
      assert.ok(ids.includes(quarantined.decisionId), `${name} on > sees the quarantine topic`);
      assert.ok(!ids.includes(dropped.decisionId), `${name}: a dropped decision is delivered to nobody`);
    }
    const r = await fetchIds(review, quarantined.decisionId);
    assert.deepEqual(r, [quarantined.decisionId]);
  });

  it('publish scope is checked against the default topic, not the topics rules add', async () => {
    const key = async (scope: string) =>
      (await t.request('POST', '/v1/keys', { body: { name: uniq('k'), scopes: [scope] } })).body
        .key as string;
    const onDefault = await key('publish:decisions.>');
    const onRuleTopic = await key('publish:urgent.>');
    const ok = await t.request('POST', '/v1/decisions', { body: decision('pf-urgent'), key: onDefault });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.topics, ['urgent.pf-urgent', 'desk.eq-us']);
    const no = await t.request('POST', '/v1/decisions', { body: decision('pf-urgent'), key: onRuleTopic });
    assert.equal(no.status, 403, JSON.stringify(no.body));
    assert.match(no.body.error.message, /decisions\.equity\.pf-urgent/);
    const drop = await t.request('POST', '/v1/decisions', { body: decision('pf-drop'), key: onRuleTopic });
    assert.equal(drop.status, 403, 'a dropped decision still needs the scope of its default topic');
  });

  it('ordered evaluation: rules go on by default; stop ends evaluation', async () => {
    const stopped = await publish(decision('pf-stop'));
    assert.deepEqual(stopped.topics, ['desk.eq-us', 'stopped.here'], 'after-stop is never evaluated');
    const goes = await publish(decision('pf-go'));
    assert.deepEqual(goes.topics, ['desk.eq-us', 'after.stop']);
    const e = await route(stopped.decisionId);
    assert.deepEqual(
      e.matchedRules.map((r: { id: string }) => r.id),
      ['desk', 'stopper'],
    );
    assert.equal(e.matchedRules[1].endedEvaluation, 'stop');
  });

  it('a change over the API routes the next decision, is versioned and audited; rollback restores', async () => {
    const pf = 'pf-change';
    assert.deepEqual((await publish(decision(pf))).topics, ['desk.eq-us']);
    const v2 = await put({
      rules: [
        { id: 'change', condition: `decision.portfolioId == "${pf}"`, topics: ['changed.{portfolioId}'] },
      ],
      comment: 'second',
    });
    assert.equal(v2.version, v1 + 1);
    assert.equal(v2.active, true);
    const next = await publish(decision(pf));
    assert.deepEqual(next.topics, ['changed.pf-change'], 'effective for the next decision, no restart');
    assert.equal((await route(next.decisionId)).ruleSet.version, v2.version);

    const list = await t.request('GET', '/v1/routes/versions');
    assert.equal(list.body.active, v2.version);
    assert.deepEqual(
      list.body.versions.slice(0, 2).map((v: { version: number }) => v.version),
      [v2.version, v1],
    );

    const rb = await t.request('POST', `/v1/routes/versions/${v1}:activate`, { body: {} });
    assert.equal(rb.status, 200, JSON.stringify(rb.body));
    assert.equal(rb.body.version, v1);
    assert.deepEqual((await publish(decision(pf))).topics, ['desk.eq-us'], 'rolled back');

    // a staged (not activated) version does not route
    const staged = await put({ rules: [], activate: false, defaultRoute: 'staged.{portfolioId}' });
    assert.equal(staged.active, false);
    assert.equal((await t.request('GET', '/v1/routes')).body.version, v1);

    await t.app.ctx.audit.drain();
    const audit = (await t.request('GET', '/v1/audit?limit=1000')).body.records as {
      actor: string;
      action: string;
      target: string;
      details: Record<string, any>;
    }[];
    const created = audit.find((a) => a.action === 'rules.create' && a.target === `v${v2.version}`);
    assert.ok(created, 'creation audited');
    assert.ok(created.actor.length > 0);
    assert.deepEqual(created.details['changes'].added, ['change']);
    assert.ok(created.details['changes'].removed.includes('dropper'));
    const rolled = audit.find((a) => a.action === 'rules.activate' && a.target === `v${v1}`);
    assert.equal(rolled?.details['rollback'], true);
    // back to v2 for the other cases' independence is not needed: they use their own portfolios
    const back = await t.request('POST', `/v1/routes/versions/${v1}:activate`, { body: { ifActive: 999 } });
    assert.equal(back.status, 409, 'ifActive guards concurrent changes');
  });

  it('explain: recorded version and rules, topics, subscriptions that took and filtered it', async () => {
    const took = uniq('took');
    const filtered = uniq('filtered');
    const notTopic = uniq('other-topic');
    for (const [name, extra] of [
      [took, {}],
      [filtered, { filter: 'decision.priority < 3' }],
      [notTopic, { topics: ['nothing.>'] }],
    ] as const) {
      const r = await t.request('POST', '/v1/subscriptions', {
        body: { name, topics: ['desk.>'], start: 'latest', ...extra },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const p = await publish(decision('pf-urgent'));
    const e = await route(p.decisionId);
    assert.equal(e.ruleSet.version, t.app.ctx.rules.activeVersion);
    assert.equal(e.ruleSet.recordedAtIngest, true);
    assert.deepEqual(e.topics, ['urgent.pf-urgent', 'desk.eq-us']);
    assert.deepEqual(
      e.matchedRules.map((r: { id: string }) => r.id),
      ['urgent', 'desk'],
    );
    assert.deepEqual(e.matchedRules[0].topics, ['urgent.pf-urgent']);
    assert.deepEqual(e.matchedRules[0].actions, { setPriority: 9 });
    assert.equal(e.priority, 9);
    assert.equal(e.reevaluation.consistent, true);
    const tookNames = e.subscriptions.took.map((l: { subscription: string }) => l.subscription);
    assert.ok(tookNames.includes(took), JSON.stringify(e.subscriptions));
    const f = e.subscriptions.filtered.find((l: { subscription: string }) => l.subscription === filtered);
    assert.ok(f, JSON.stringify(e.subscriptions));
    assert.ok(['remainder_false', 'term_not_matched'].includes(f.reason), f.reason);
    assert.ok(!tookNames.includes(notTopic));

    // explain is exact for the past: a later version does not change what was recorded
    const newer = await put({ rules: [], comment: 'empty' });
    const again = await route(p.decisionId);
    assert.equal(again.ruleSet.version, e.ruleSet.version);
    assert.equal(again.ruleSet.activeNow, false);
    assert.deepEqual(again.topics, e.topics);
    assert.equal(again.reevaluation.consistent, true);
    await t.request('POST', `/v1/routes/versions/${e.ruleSet.version}:activate`);
    assert.ok(newer.version > e.ruleSet.version);

    // cds explain against the listening server: text by default, the JSON answer with --json
    const address = await t.app.http.listen({ host: '127.0.0.1', port: 0 });
    const { runCli } = await import('../../src/cli/index.ts');
    const run = async (...argv: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli({
        argv,
        env: { CDS_URL: address, CDS_API_KEY: ADMIN_KEY },
        stdout: (l) => out.push(l),
        stderr: (l) => err.push(l),
      });
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    const text = await run('explain', p.decisionId);
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, new RegExp(`rule set v${e.ruleSet.version}`));
    assert.match(text.out, /matched #0 urgent/);
    assert.match(text.out, new RegExp(`took: ${took}`));
    assert.match(text.out, new RegExp(`filtered: ${filtered}`));
    const json = await run('explain', p.decisionId, '--json');
    assert.equal(JSON.parse(json.out).decisionId, p.decisionId);
    const missing = await run('explain', 'no-such-decision');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /404/);
  });

  it('dry-run with sample decisions: candidate beside active, with differences', async () => {
    const r = await t.request('POST', '/v1/routes:test', {
      body: {
        ruleSet: {
          rules: [
            {
              id: 'all-urgent',
              condition: 'decision.portfolioId == "pf-urgent"',
              topics: ['new.{portfolioId}'],
              actions: { drop: true },
            },
          ],
        },
        decisions: [decision('pf-urgent'), decision('pf-none', { attributes: { desk: 'x' } })],
      },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.source, 'samples');
    assert.equal(r.body.active.version, t.app.ctx.rules.activeVersion);
    assert.equal(r.body.candidate.version, null);
    assert.deepEqual(r.body.summary, { decisions: 2, changed: 1, unchanged: 1 });
    const [first, second] = r.body.results;
    assert.deepEqual(first.active.topics, ['urgent.pf-urgent', 'desk.eq-us']);
    assert.equal(first.candidate.dropped, true);
    const fields = first.differences.map((d: { field: string }) => d.field);
    assert.ok(fields.includes('topics') && fields.includes('dropped') && fields.includes('priority'), fields);
    const topics = first.differences.find((d: { field: string }) => d.field === 'topics');
    assert.deepEqual(topics.removed, ['urgent.pf-urgent', 'desk.eq-us']);
    assert.deepEqual(second.differences, []);
    assert.equal(t.app.ctx.rules.activeVersion, r.body.active.version, 'the active set untouched');
  });

  it('dry-run over a recorded time range, with a stored version as the candidate', async () => {
    const from = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5));
    const a = await publish(decision('pf-range'));
    const b = await publish(decision('pf-range', { attributes: { desk: 'fx' } }));
    const to = new Date(Date.now() + 1).toISOString();
    const cand = await put({
      rules: [{ id: 'range', condition: 'decision.portfolioId == "pf-range"', topics: ['range.hit'] }],
      activate: false,
    });
    const r = await t.request('POST', '/v1/routes:test', { body: { version: cand.version, from, to } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.source, 'recorded');
    assert.equal(r.body.candidate.version, cand.version);
    const ids = r.body.results.map((x: { decisionId: string }) => x.decisionId);
    assert.deepEqual(ids, [a.decisionId, b.decisionId]);
    const first = r.body.results[0];
    assert.equal(first.recorded.ruleSet, t.app.ctx.rules.activeVersion);
    assert.deepEqual(first.recorded.topics, ['desk.eq-us']);
    assert.deepEqual(first.candidate.topics, ['range.hit']);
    assert.equal(r.body.summary.changed, 2);
  });

  it('bad input: precise 4xx, nothing stored, the active set untouched', async () => {
    const active = (await t.request('GET', '/v1/routes')).body.version;
    const latest = (await t.request('GET', '/v1/routes/versions?limit=1')).body.versions[0].version;
    const bad = async (body: unknown, path: string, code: string) => {
      const r = await t.request('POST', '/v1/routes', { body });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'VALIDATION_FAILED');
      const e = r.body.error.details.errors.find((x: { path: string }) => x.path === path);
      assert.ok(e, `${path} in ${JSON.stringify(r.body.error.details.errors)}`);
      assert.equal(e.code, code, JSON.stringify(e));
      return e;
    };
    const cel = await bad(
      { rules: [{ id: 'x', condition: 'decision.portfolioId == ', topics: ['a.b'] }] },
      '/rules/0/condition',
      'cel_syntax',
    );
    assert.equal(cel.column, 25, JSON.stringify(cel));
    assert.equal(typeof cel.line, 'number', JSON.stringify(cel));
    assert.equal(typeof cel.column, 'number');
    await bad(
      { rules: [{ id: 'x', condition: 'true', topics: ['a.b'], colour: 'red' }] },
      '/rules/0/colour',
      'unknown_field',
    );
    await bad({ rules: [], extra: 1 }, '/extra', 'unknown_field');
    const topicErr = await t.request('POST', '/v1/routes', {
      body: { rules: [{ id: 'x', condition: 'true', topics: ['a.*.b'] }] },
    });
    assert.equal(topicErr.status, 400);
    assert.equal(topicErr.body.error.details.errors[0].path, '/rules/0/topics/0');
    await bad(
      { rules: [{ id: 'x', condition: 'true', topics: ['a.{nosuch}'] }] },
      '/rules/0/topics/0',
      'unknown_field',
    );
    await bad(
      { rules: [{ id: 'x', condition: 'decision.priority > 1 && nosuch', topics: ['a'] }] },
      '/rules/0/condition',
      'cel_type',
    );
    const q = await t.request('POST', '/v1/routes', {
      body: { rules: [{ id: 'x', condition: 'true', actions: { quarantine: 'bad..topic' } }] },
    });
    assert.equal(q.status, 400);
    assert.equal(q.body.error.details.errors[0].path, '/rules/0/actions/quarantine');
    await bad({ rules: [{ id: 'x', condition: 'true', topics: [] }] }, '/rules/0/topics', 'too_small');
    const unknownVersion = await t.request('POST', '/v1/routes/versions/9999:activate');
    assert.equal(unknownVersion.status, 404);
    assert.equal(unknownVersion.body.error.code, 'NOT_FOUND');
    assert.equal((await t.request('GET', '/v1/routes/versions/9999')).status, 404);
    assert.equal((await t.request('GET', '/v1/routes/versions/abc')).status, 400);
    const dry = await t.request('POST', '/v1/routes:test', {
      body: { version: 9999, decisions: [decision('x')] },
    });
    assert.equal(dry.status, 404);
    const dryBad = await t.request('POST', '/v1/routes:test', {
      body: { ruleSet: { rules: [{ id: 'y', condition: '1 +', topics: ['a'] }] }, decisions: [{ nope: 1 }] },
    });
    assert.equal(dryBad.status, 400);
    const paths = dryBad.body.error.details.errors.map((e: { path: string }) => e.path);
    assert.ok(paths.includes('/ruleSet/rules/0/condition'), paths);
    assert.ok(
      paths.some((p: string) => p.startsWith('/decisions/0')),
      paths,
    );
    assert.equal((await t.request('GET', '/v1/routes')).body.version, active, 'active set untouched');
    assert.equal(
      (await t.request('GET', '/v1/routes/versions?limit=1')).body.versions[0].version,
      latest,
      'nothing stored',
    );
    const noScope = await t.request('POST', '/v1/keys', { body: { name: uniq('k'), scopes: ['publish:>'] } });
    const forbidden = await t.request('POST', '/v1/routes', { body: { rules: [] }, key: noScope.body.key });
    assert.equal(forbidden.status, 403);
  });
});

describe('routing rules with a configured key field', () => {
  it('ingest.keyField is the default key; a matched setKey rule overrides it', async () => {
    const t = await startTestApp({ ingest: { keyField: 'accountId' } });
    try {
      const r = await t.request('POST', '/v1/routes', {
        body: {
          rules: [
            { id: 'k', condition: 'decision.portfolioId == "pf-k"', actions: { setKey: '{strategyId}' } },
          ],
        },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const p = await t.request('POST', '/v1/decisions', {
        body: [makeDecision(1, { accountId: 'acc-1' }), makeDecision(2, { portfolioId: 'pf-k' } as never)],
      });
      assert.equal(p.status, 200, JSON.stringify(p.body));
      assert.equal((await t.request('GET', '/v1/decisions/dec-000001')).body.key, 'acc-1');
      assert.equal((await t.request('GET', '/v1/decisions/dec-000002')).body.key, 'mean-reversion-3');
      const doc = await t.request('GET', '/openapi.json', { key: null });
      assert.ok(doc.body.paths['/v1/routes:test'] && doc.body.paths['/v1/decisions/{decisionId}/route']);
    } finally {
      await t.close();
    }
  });
});

describe('rule sets across a restart', () => {
  it('the active version, the versions and explain survive a restart', async () => {
    const t = await startTestApp();
    const body = {
      rules: [
        { id: 'r', condition: 'decision.portfolioId == "pf-restart"', topics: ['restart.{portfolioId}'] },
      ],
    };
    const v1 = (await t.request('POST', '/v1/routes', { body })).body.version as number;
    await t.request('POST', '/v1/routes', { body: { rules: [] } });
    await t.request('POST', `/v1/routes/versions/${v1}:activate`);
    const p = await t.request('POST', '/v1/decisions', {
      body: makeDecision(1, { portfolioId: 'pf-restart' } as never),
    });
    assert.deepEqual(p.body.topics, ['restart.pf-restart']);
    await t.close({ keep: true });
    const t2 = await startTestApp({}, t.dataDir);
    try {
      const cur = await t2.request('GET', '/v1/routes');
      assert.equal(cur.body.version, v1);
      assert.equal((await t2.request('GET', '/v1/routes/versions')).body.versions.length, 2);
      const q = await t2.request('POST', '/v1/decisions', {
        body: makeDecision(2, { portfolioId: 'pf-restart' } as never),
      });
      assert.deepEqual(q.body.topics, ['restart.pf-restart']);
      const e = await t2.request('GET', '/v1/decisions/dec-000001/route');
      assert.equal(e.body.ruleSet.version, v1);
      assert.deepEqual(
        e.body.matchedRules.map((r: { id: string }) => r.id),
        ['r'],
      );
    } finally {
      await t2.close();
    }
  });
});
