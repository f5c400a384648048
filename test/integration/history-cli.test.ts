/**
 * `cds replay` against a real service process (ADR 0019): NDJSON to a file or standard output, the
 * same lines as the REST stream, time and position bounds, the client-side rate limit, and refusals
 * reported with the service's error and exit code 1 (usage errors 2).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCdsProcess } from '../helpers/cli.ts';
import { createDecisionGenerator } from '../helpers/decisions.ts';
import {
  cleanupTempDirs,
  makeTempDir,
  publish,
  startServer,
  type PublishAck,
  type ServerHandle,
} from '../helpers/server.ts';

const N = 2000;

const cds = runCdsProcess;

const nonEmpty = (text: string) => text.split('\n').filter((l) => l.length > 0);

describe('cds replay', { timeout: 300_000 }, () => {
  let server: ServerHandle;
  let env: Record<string, string>;
  const positions: string[] = [];
  let middle = '';

  before(async () => {
    server = await startServer();
    env = { CDS_URL: server.url, CDS_API_KEY: server.adminKey };
    const gen = createDecisionGenerator({ seed: 11, portfolios: 6, idPrefix: 'cli-replay' });
    for (let i = 0; i < N; i += 500) {
      if (i === N / 2) {
        await new Promise((r) => setTimeout(r, 20));
        middle = new Date().toISOString();
        await new Promise((r) => setTimeout(r, 20));
      }
      const r = await publish(server.url, server.adminKey, gen.take(500));
      assert.equal(r.status, 200);
      positions.push(...(r.body as { results: PublishAck[] }).results.map((x) => x.position));
    }
  });
  after(async () => {
    await server?.stop();
    cleanupTempDirs();
  });

  it('writes the range as NDJSON to a file, the same lines as the REST stream, and a summary on stdout', async () => {
    const out = join(makeTempDir('cds-replay-'), 'out.ndjson');
    const r = await cds(['replay', '--topic', 'decisions.>', '--from', '0:0', '--out', out], env);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout.trim()) as { lines: number; from: string; to: string; epoch: string };
    assert.equal(summary.lines, N);
    assert.equal(summary.from, '0:0');
    assert.equal(summary.to, `0:${N}`);
    assert.equal(summary.epoch, server.epoch);
    const file = await readFile(out, 'utf8');
    const rest = await fetch(`${server.url}/v1/topics/decisions.%3E/decisions?from=0:0`, {
      headers: { authorization: `Bearer ${server.adminKey}` },
    });
    // receivedAt and the expired mark are computed per request: compare the rest of each line.
    const strip = (l: string) => l.replace(/,"expired":true/, '');
    assert.deepEqual(nonEmpty(file).map(strip), nonEmpty(await rest.text()).map(strip));
    assert.deepEqual(
      nonEmpty(file).map((l) => (JSON.parse(l) as { position: string }).position),
      positions,
    );
  });

  it('bounds by time and position, writes to stdout, and limits its rate on the client', async () => {
    const r = await cds(['replay', '--topic', 'decisions.>', '--from', middle, '--to', `0:${N - 200}`], env);
    assert.equal(r.code, 0, r.stderr);
    const got = nonEmpty(r.stdout).map((l) => (JSON.parse(l) as { position: string }).position);
    assert.deepEqual(got, positions.slice(N / 2, N - 200));
    assert.equal(JSON.parse(nonEmpty(r.stderr).at(-1) as string).lines, N / 2 - 200);
    const fx = await cds(['replay', '--topic', 'decisions.fx.*', '--from', '0:0'], env);
    assert.equal(fx.code, 0, fx.stderr);
    for (const l of nonEmpty(fx.stdout)) assert.match(l, /"topics":\["decisions\.fx\./);
    // 300 lines at 200/s take at least 1.5 s however fast the service is.
    const slow = await cds(
      ['replay', '--topic', 'decisions.>', '--from', '0:0', '--to', '0:300', '--rate', '200'],
      env,
    );
    assert.equal(slow.code, 0, slow.stderr);
    assert.equal(nonEmpty(slow.stdout).length, 300);
    const summary = JSON.parse(nonEmpty(slow.stderr).at(-1) as string) as { seconds: number };
    assert.ok(summary.seconds >= 1.4, `${summary.seconds} s`);
  });

  it('reports refusals with the service error (exit 1) and bad usage (exit 2)', async () => {
    const cases: [string[], number, RegExp][] = [
      [['--topic', 'decisions.>', '--from', 'yesterday'], 1, /400.*INVALID_QUERY.*"path":"from"/],
      [
        ['--topic', 'decisions.>', '--from', '0:500', '--to', '0:100'],
        1,
        /400.*INVALID_QUERY.*"path":"from"/,
      ],
      [['--topic', 'decisions.>', '--from', `0:${N + 5}`], 1, /400.*INVALID_POSITION/],
      [['--topic', 'nothing.>', '--from', '0:0'], 1, /404.*UNKNOWN_TOPIC/],
      [['--from', '0:0'], 2, /VALIDATION_FAILED: usage: cds replay --topic/],
      [['--topic', 'decisions.>', '--rate', 'fast'], 2, /--rate must be a positive number/],
    ];
    for (const [args, code, re] of cases) {
      const r = await cds(['replay', ...args], env);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.equal(r.stdout, '', 'nothing written');
    }
  });
});
