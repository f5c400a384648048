/**
 * The benchmark harness end to end, briefly: `bench/run.ts ingest` at 2,000 decisions/s for 5 s
 * against a service it starts itself; the result file has every field and nothing was lost.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { cleanupTempDirs, makeTempDir, REPO_ROOT } from '../helpers/server.ts';

const run = promisify(execFile);

test(
  'bench ingest: a short low-rate run writes a complete result with zero lost',
  { timeout: 90_000 },
  async () => {
    const dir = makeTempDir('cds-bench-smoke-');
    const out = join(dir, 'ingest.json');
    const args = [
      '--import',
      'tsx',
      'bench/run.ts',
      'ingest',
      '--rate',
      '2000',
      '--duration',
      '5',
      '--warmup',
      '1',
    ];
    const { stdout } = await run(
      process.execPath,
      [...args, '--batch', '200', '--connections', '2', '--out', out],
      {
        cwd: REPO_ROOT,
        timeout: 80_000,
      },
    ).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`bench failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
    });
    assert.match(stdout, /publish ack latency/);
    const r = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown> & {
      latencyMs: { publishAck: Record<string, number> };
      cpu: Record<string, Record<string, number> | null>;
      peakRssMb: Record<string, number | null>;
      machine: Record<string, unknown>;
      windows: { ratio: number }[];
      duplicates: { acknowledged: number; stored: number };
    };

    for (const f of [
      'workload',
      'offeredRate',
      'achievedRate',
      'lost',
      'duplicates',
      'cpu',
      'peakRssMb',
      'machine',
      'config',
      'commit',
      'windows',
    ]) {
      assert.ok(f in r, `result lacks ${f}`);
    }
    assert.equal(r['workload'], 'ingest');
    assert.equal(r['offeredRate'], 2000);
    for (const p of ['p50', 'p99', 'p999', 'max'])
      assert.equal(typeof r.latencyMs.publishAck[p], 'number', `publishAck.${p}`);
    assert.ok(r.latencyMs.publishAck['count']! > 0);
    for (const proc of ['service', 'generator']) {
      const c = r.cpu[proc];
      assert.ok(c, `cpu.${proc}`);
      for (const f of ['userS', 'systemS', 'totalS', 'pctOfOneCore'])
        assert.equal(typeof c[f], 'number', `cpu.${proc}.${f}`);
      assert.ok((r.peakRssMb[proc] ?? 0) > 0, `peakRssMb.${proc}`);
    }
    for (const f of ['cpus', 'model', 'memoryMb', 'node']) assert.ok(f in r.machine, `machine.${f}`);
    assert.match(String(r['commit']), /^[0-9a-f]{40}$|^unknown$/);
    assert.equal(r['lost'], 0, 'acknowledged decisions missing afterwards');
    assert.equal(r.duplicates.acknowledged, 0);
    assert.equal(r.duplicates.stored, 0);
    assert.deepEqual(r['errors'], {});
    assert.ok(r.windows.length >= 1);
    // 2,000/s is far below capacity: it must hold.
    assert.equal(r['sustained'], true, `not sustained: ${JSON.stringify(r.windows)}`);
    cleanupTempDirs();
  },
);
