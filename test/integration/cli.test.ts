/**
 * The cds command against a real service process: 100,000 decisions published from a JSON-lines
 * file, queried back by several filters, still there after a restart; keys; verify-audit detecting
 * a tampered trail.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { open } from 'lmdb';
import type { Decision } from '../../src/domain/decision.ts';
import { runCdsProcess } from '../helpers/cli.ts';
import { createDecisionGenerator, testSeed, writeDecisionsJsonl } from '../helpers/decisions.ts';
import { cleanupTempDirs, makeTempDir, startServer, type ServerHandle } from '../helpers/server.ts';

const N = 100_000;

/** Runs `cds ...` as a process and returns its exit code and output. */
const cds = runCdsProcess;

describe('cds command', { timeout: 300_000 }, () => {
  let server: ServerHandle | undefined;
  after(async () => {
    await server?.stop();
    cleanupTempDirs();
  });

  it(`publishes ${N.toLocaleString('en')} decisions from a file, queries them by filters, keeps them across a restart`, async () => {
    const dir = makeTempDir('cds-cli-');
    const seed = testSeed('cli-publish');
    const decisions: Decision[] = createDecisionGenerator({ seed, portfolios: 40, idPrefix: 'cli' }).take(N);
    const file = join(dir, 'decisions.jsonl');
    await writeDecisionsJsonl(file, decisions);
    server = await startServer({ dataDir: join(dir, 'data') });
    const env = { CDS_URL: server.url, CDS_API_KEY: server.adminKey };
    const pub = await cds(['publish', file, '--batch', '2000'], env);
    assert.equal(pub.code, 0, pub.stderr);
    const summary = JSON.parse(pub.stdout.trim()) as {
      published: number;
      duplicates: number;
      invalid: number;
    };
    assert.deepEqual([summary.published, summary.duplicates, summary.invalid], [N, 0, 0]);

    const filters: [string[], (d: Decision) => boolean][] = [
      [['--portfolioId', 'pf-3'], (d) => d.portfolioId === 'pf-3'],
      [['--assetClass', 'fx'], (d) => d.instrument.assetClass === 'fx'],
      [
        ['--verdict', 'rejected', '--minPriority', '6'],
        (d) => d.policy.verdict === 'rejected' && d.priority >= 6,
      ],
      [['--topic', 'decisions.equity.>'], (d) => d.instrument.assetClass === 'equity'],
      [[], () => true],
    ];
    const check = async () => {
      for (const [flags, pred] of filters) {
        const r = await cds(['query', ...flags, '--count'], env);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(
          Number(r.stdout.trim()),
          decisions.filter(pred).length,
          `${flags.join(' ')} (seed ${seed})`,
        );
      }
    };
    await check();
    // Publishing the same file again stores nothing and reports duplicates.
    const again = await cds(['publish', file, '--batch', '5000'], env);
    assert.equal(JSON.parse(again.stdout.trim()).duplicates, N);

    await server.stop();
    server = await startServer({ dataDir: join(dir, 'data'), adminKey: server.adminKey });
    env.CDS_URL = server.url;
    await check();
    const one = await cds(['get', 'cli-777'], env);
    assert.equal(JSON.parse(one.stdout).decision.decisionId, 'cli-777');
  });

  it('reports invalid lines by number, publishes the rest, and exits 1', async () => {
    assert.ok(server);
    const dir = makeTempDir('cds-cli-bad-');
    const file = join(dir, 'mixed.jsonl');
    const good = createDecisionGenerator({ seed: 1, idPrefix: 'mixed' }).take(3);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(
      file,
      [
        JSON.stringify(good[0]),
        '{not json',
        JSON.stringify({ ...good[1], priority: 99 }),
        JSON.stringify(good[2]),
      ].join('\n') + '\n',
    );
    const r = await cds(['publish', file], { CDS_URL: server.url, CDS_API_KEY: server.adminKey });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /line 2: not JSON/);
    assert.match(r.stderr, /line 3: \/priority/);
    assert.equal(JSON.parse(r.stdout.trim()).published, 2);
  });

  it('creates, lists and revokes keys', async () => {
    assert.ok(server);
    const env = { CDS_URL: server.url, CDS_API_KEY: server.adminKey };
    const c = await cds(['keys', 'create', '--name', 'ops', '--scope', 'subscribe:decisions.>'], env);
    assert.equal(c.code, 0, c.stderr);
    const created = JSON.parse(c.stdout) as { key: string; principal: { id: string } };
    assert.match(created.key, /^cds_/);
    const l = await cds(['keys', 'list'], env);
    assert.ok(JSON.parse(l.stdout).principals.some((p: { id: string }) => p.id === created.principal.id));
    assert.equal((await cds(['keys', 'revoke', created.principal.id], env)).code, 0);
    const denied = await cds(['get', 'cli-1'], { CDS_URL: server.url, CDS_API_KEY: created.key });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /401/);
  });

  it('verify-audit passes on an intact trail and fails on an edited or removed record', async () => {
    assert.ok(server);
    const dataDir = server.dataDir;
    await server.stop();
    server = undefined;
    const ok = await cds(['verify-audit', '--data-dir', dataDir], {});
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).ok, true);
    // Tamper with the stored trail directly, as an attacker with file access would.
    const env = open({ path: join(dataDir, 'state') });
    const audit = env.openDB({ name: 'audit' });
    const keys = [...audit.getKeys()];
    assert.ok(keys.length >= 3);
    const k = keys[1] as number;
    const rec = audit.get(k) as Record<string, unknown>;
    await audit.put(k, { ...rec, actor: 'someone-else' });
    await env.close();
    const bad = await cds(['verify-audit', '--data-dir', dataDir], {});
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /AUDIT_CHAIN_BROKEN/);
    const env2 = open({ path: join(dataDir, 'state') });
    const audit2 = env2.openDB({ name: 'audit' });
    await audit2.put(k, rec);
    await audit2.remove(keys[2] as number);
    await env2.close();
    const removed = await cds(['verify-audit', '--data-dir', dataDir], {});
    assert.equal(removed.code, 1);
    assert.match(removed.stdout, /removed/);
  });
});
