/**
 * Historical retrieval over REST (ADR 0019): GET /v1/topics/{topic}/decisions streams exactly the
 * stored decisions of a position or time range, in log order, with their envelope and the expired
 * mark; scopes filter it; every bad input is a precise error naming its parameter; the stream follows
 * the client (a slow reader slows the log reads, a client that leaves stops them).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Decision } from '../../src/domain/decision.ts';
import { ADMIN_KEY, startTestApp, type TestApp } from '../helpers/app.ts';
import { createDecisionGenerator, testSeed } from '../helpers/decisions.ts';

interface Line {
  decisionId: string;
  revision: number;
  position: string;
  epoch: string;
  key: string;
  topics: string[];
  priority: number;
  receivedAt: string;
  expired?: true;
  decision: Decision;
}

const PAST = '2020-01-01T00:00:00Z';
const FUTURE = '2099-01-01T00:00:00Z';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const topicOf = (d: Decision) => `decisions.${d.instrument.assetClass}.${d.portfolioId}`;

describe('historical retrieval over REST', { timeout: 180_000 }, () => {
  let t: TestApp;
  let url: string;
  const seed = testSeed('history-rest');
  const gen = createDecisionGenerator({ seed, portfolios: 8, idPrefix: 'h' });
  /** Every stored decision in log order, with where and when. */
  const stored: { decision: Decision; position: string }[] = [];
  /** Per batch: the wall-clock interval that holds its receivedAt. */
  const batches: { first: number; count: number; before: number; after: number }[] = [];

  const get = async (path: string, key = ADMIN_KEY) => {
    const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${key}` } });
    const text = await res.text();
    return { res, text, json: () => JSON.parse(text) as { error: { code: string; details?: any } } };
  };
  const lines = async (path: string, key = ADMIN_KEY): Promise<Line[]> => {
    const { res, text } = await get(path, key);
    assert.equal(res.status, 200, text.slice(0, 500));
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    return text
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Line);
  };
  const publish = async (ds: Decision[]) => {
    const before = Date.now();
    const r = await t.request('POST', '/v1/decisions', { body: ds });
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 500));
    const results = r.body.results as { position: string }[];
    batches.push({ first: stored.length, count: ds.length, before, after: Date.now() });
    ds.forEach((d, i) => stored.push({ decision: d, position: results[i]!.position }));
    await sleep(5); // batches never share a millisecond: time bounds fall between them
  };

  before(async () => {
    t = await startTestApp({ log: { segmentBytes: 1024 * 1024 } }); // the smallest: two segments here
    url = (await t.app.listen()).http;
    for (let b = 0; b < 12; b++) {
      const ds = gen.take(150).map((d, i): Decision => {
        // Some expired; some with an attribute named expiresAt that must not be taken for the field.
        if (i % 10 === 0) return { ...d, expiresAt: PAST };
        if (i % 10 === 1) return { ...d, expiresAt: FUTURE, attributes: { expiresAt: PAST, x: '"}{' } };
        if (i % 10 === 2) {
          const { expiresAt: _, ...rest } = d;
          return { ...rest, attributes: { expiresAt: PAST } };
        }
        return d;
      });
      await publish(ds);
    }
    // Amendments and cancellations: later revisions are further lines of the same decision.
    await publish(stored.slice(0, 40).map((s) => ({ ...s.decision, revision: 2, priority: 9 })));
  });
  after(() => t?.close());

  it('streams every stored decision of the range in log order, with its envelope and the expired mark', async () => {
    const got = await lines('/v1/topics/decisions.%3E/decisions');
    assert.equal(got.length, stored.length, `seed ${seed}`);
    const now = Date.now();
    got.forEach((l, i) => {
      const s = stored[i]!;
      assert.equal(l.position, s.position);
      assert.deepEqual(l.decision, s.decision);
      assert.equal(l.decisionId, s.decision.decisionId);
      assert.equal(l.revision, s.decision.revision);
      assert.equal(l.epoch, t.app.ctx.log.epoch);
      assert.deepEqual(l.topics, [topicOf(s.decision)]);
      assert.equal(l.key, s.decision.portfolioId);
      const exp = s.decision.expiresAt;
      assert.equal(l.expired === true, exp !== undefined && Date.parse(exp) <= now, `${l.position} expired`);
    });
  });

  it('reads between positions and between times, from inclusive, to exclusive', async () => {
    const byPos = await lines('/v1/topics/decisions.%3E/decisions?from=0:100&to=0:250');
    assert.deepEqual(
      byPos.map((l) => l.position),
      stored.slice(100, 250).map((s) => s.position),
    );
    const b3 = batches[3]!;
    const b7 = batches[7]!;
    const from = new Date(batches[2]!.after + 1).toISOString();
    const to = new Date(batches[6]!.after + 1).toISOString();
    assert.ok(b3.before >= batches[2]!.after + 1 && b7.before >= batches[6]!.after + 1);
    const byTime = await lines(`/v1/topics/decisions.%3E/decisions?from=${from}&to=${to}`);
    assert.deepEqual(
      byTime.map((l) => l.position),
      stored.slice(b3.first, b7.first).map((s) => s.position),
    );
    // A time and a position mixed; a range ending where it starts is empty.
    const mixed = await lines(`/v1/topics/decisions.%3E/decisions?from=${from}&to=0:${b3.first + 10}`);
    assert.equal(mixed.length, 10);
    assert.deepEqual(await lines('/v1/topics/decisions.%3E/decisions?from=0:7&to=0:7'), []);
    const { res } = await get('/v1/topics/decisions.%3E/decisions?from=0:5&to=0:9');
    assert.equal(res.headers.get('x-cds-from'), '0:5');
    assert.equal(res.headers.get('x-cds-to'), '0:9');
    assert.equal(res.headers.get('x-cds-epoch'), t.app.ctx.log.epoch);
  });

  it('selects by topic or pattern, and only what the caller may see', async () => {
    for (const pattern of ['decisions.fx.*', 'decisions.equity.pf-1', 'decisions.*.pf-2', 'decisions.>']) {
      const got = await lines(`/v1/topics/${encodeURIComponent(pattern)}/decisions`);
      const re = new RegExp(`^${pattern.replace(/\./g, '\\.').replace('*', '[^.]+').replace('>', '.+')}$`);
      assert.deepEqual(
        got.map((l) => l.position),
        stored.filter((s) => re.test(topicOf(s.decision))).map((s) => s.position),
        pattern,
      );
    }
    const k = await t.request('POST', '/v1/keys', {
      body: { name: 'fx-reader', scopes: ['subscribe:decisions.fx.>'] },
    });
    assert.equal(k.status, 201);
    const fx = await lines('/v1/topics/decisions.%3E/decisions', k.body.key);
    assert.ok(fx.length > 0);
    assert.deepEqual(
      fx.map((l) => l.position),
      stored.filter((s) => s.decision.instrument.assetClass === 'fx').map((s) => s.position),
    );
    const denied = await get('/v1/topics/decisions.equity.%3E/decisions', k.body.key);
    assert.equal(denied.res.status, 403);
    assert.equal(denied.json().error.code, 'FORBIDDEN');
  });

  it('answers each bad input with a precise error naming the parameter, before anything is streamed', async () => {
    const end = t.app.ctx.log.extents()[0]!.next;
    const cases: [string, number, string, string | undefined][] = [
      ['decisions.%3E/decisions?from=0:200&to=0:100', 400, 'INVALID_QUERY', 'from'],
      [
        'decisions.%3E/decisions?from=2026-11-27T10:00:00Z&to=2026-11-27T09:00:00Z',
        400,
        'INVALID_QUERY',
        'from',
      ],
      ['nothing.here/decisions', 404, 'UNKNOWN_TOPIC', undefined],
      ['decisions.nothing.%3E/decisions', 404, 'UNKNOWN_TOPIC', undefined],
      ['decisions.%3E/decisions?from=2026-13-45T25:00:00Z', 400, 'INVALID_QUERY', 'from'],
      ['decisions.%3E/decisions?to=2026-11-27 10:00', 400, 'INVALID_QUERY', 'to'],
      ['decisions.%3E/decisions?from=yesterday', 400, 'INVALID_QUERY', 'from'],
      ['decisions.%3E/decisions?from=0:x', 400, 'INVALID_QUERY', 'from'],
      [`decisions.%3E/decisions?from=0:${end + 1}`, 400, 'INVALID_POSITION', 'from'],
      [`decisions.%3E/decisions?to=0:${end + 1000}`, 400, 'INVALID_POSITION', 'to'],
      ['decisions.%3E/decisions?from=3:0', 400, 'INVALID_POSITION', 'from'],
      ['decisions.%3E/decisions?from=0:1,0:2', 400, 'INVALID_QUERY', 'from'],
      ['decisions.%3E/decisions?from=0:1&epoch=0123456789abcdef', 409, 'EPOCH_MISMATCH', undefined],
      ['decisions.%3E/decisions?limit=5', 400, 'INVALID_QUERY', 'limit'],
      ['decisions.%3E/decisions?from=0:1&from=0:2', 400, 'INVALID_QUERY', 'from'],
      ['decisions.%3E.x/decisions', 400, 'VALIDATION_FAILED', 'topic'],
      ['decisions.%3E/latest?excludeCancelled=yes', 400, 'INVALID_QUERY', 'excludeCancelled'],
    ];
    for (const [path, status, code, param] of cases) {
      const r = await get(`/v1/topics/${path}`);
      assert.equal(r.res.status, status, `${path}: ${r.text}`);
      assert.equal(r.res.headers.get('content-type'), 'application/json; charset=utf-8', path);
      const e = r.json().error;
      assert.equal(e.code, code, path);
      if (param !== undefined) assert.equal(e.details.errors[0].path, param, path);
    }
    // The epoch that does match is accepted.
    const ok = await lines(`/v1/topics/decisions.%3E/decisions?from=0:1&to=0:3&epoch=${t.app.ctx.log.epoch}`);
    assert.equal(ok.length, 2);
  });

  it('refuses a trimmed position with the first held one, and starts a time before it at the first', async () => {
    const log = t.app.ctx.log;
    const first = await log.trim(0, stored.length);
    assert.ok(first > 0 && first < stored.length, `trimmed to ${first}`);
    const r = await get('/v1/topics/decisions.%3E/decisions?from=0:0');
    assert.equal(r.res.status, 410, r.text);
    assert.equal(r.json().error.code, 'POSITION_TRIMMED');
    assert.equal(r.json().error.details.first, `0:${first}`);
    const fromOld = await lines(`/v1/topics/decisions.%3E/decisions?from=${PAST}`);
    assert.equal(fromOld[0]?.position, `0:${first}`);
    assert.equal(fromOld.length, stored.length - first);
  });
});

describe('historical retrieval follows the client', { timeout: 180_000 }, () => {
  let t: TestApp;
  let url: string;
  const N = 20_000;
  let reads = 0;

  before(async () => {
    t = await startTestApp();
    url = (await t.app.listen()).http;
    const gen = createDecisionGenerator({ seed: 7, portfolios: 20, idPrefix: 'bp' });
    for (let i = 0; i < N; i += 2000) {
      const r = await t.request('POST', '/v1/decisions', { body: gen.take(2000) });
      assert.equal(r.status, 200);
    }
    const log = t.app.ctx.log;
    const read = log.read.bind(log);
    log.read = async (p, from, max) => {
      const recs = await read(p, from, max);
      reads += recs.length;
      return recs;
    };
  });
  after(() => t?.close());

  it('reads the log only as fast as the client takes the lines, and stops when the client goes away', async () => {
    const abort = new AbortController();
    const res = await fetch(`${url}/v1/topics/decisions.%3E/decisions`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
      signal: abort.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let bytes = 0;
    while (bytes < 1024 * 1024) bytes += (await reader.read()).value?.byteLength ?? 0;
    // The client pauses: socket buffers fill, the server waits for 'drain' and stops reading.
    let before = -1;
    for (let i = 0; i < 50 && reads !== before; i++) {
      before = reads;
      await sleep(300);
    }
    assert.equal(reads, before, 'reads stopped while the client paused');
    assert.ok(
      reads < N,
      `the server read ${reads} of ${N} records ahead of a client that took ${bytes} bytes`,
    );
    // Reading resumes with the client; then the client leaves half-way and the reads stop.
    while (bytes < 4 * 1024 * 1024) bytes += (await reader.read()).value?.byteLength ?? 0;
    assert.ok(reads > before);
    abort.abort();
    await sleep(300);
    const left = reads;
    await sleep(500);
    assert.equal(reads, left, 'no read after the client went away');
    assert.ok(left < N, `stopped at ${left} of ${N}`);
  });

  it('a client that stops reading does not hold a shutdown up', async () => {
    const res = await fetch(`${url}/v1/topics/decisions.%3E/decisions`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    const reader = res.body!.getReader();
    await reader.read();
    await sleep(500); // the server is now waiting for 'drain'
    const t0 = Date.now();
    const closing = t.app.close();
    // The client gets what was sent, then the connection ends within a second or so of the shutdown
    // (the rest of the shutdown, such as the index catching up, takes what it takes).
    await assert.rejects(async () => {
      for (;;) if ((await reader.read()).done) throw new Error('ended');
    });
    assert.ok(Date.now() - t0 < 10_000, `the stream ended ${Date.now() - t0} ms after the shutdown began`);
    await closing;
  });
});
