/**
 * The harness's profile summary (bench/lib/cpuprofile.ts, ADR 0018): samples of the measured window
 * only, idle apart, busy time per area of the code base and per function.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { areaOf, summarizeProfile, summarizeProfiles } from '../../bench/lib/cpuprofile.ts';

const frame = (id: number, functionName: string, url: string) => ({
  id,
  callFrame: { functionName, url, lineNumber: 0 },
});

/** Samples every 1 ms from t = 1,000,000 us: `n` of each node id, in the order given. */
function profile(runs: readonly (readonly [id: number, n: number])[]) {
  const samples: number[] = [];
  for (const [id, n] of runs) for (let i = 0; i < n; i++) samples.push(id);
  return {
    nodes: [
      frame(1, '(idle)', ''),
      frame(2, 'pump', 'file:///work/main/src/delivery/runtime.ts'),
      frame(3, '(garbage collector)', ''),
      frame(4, 'publishValid', 'file:///work/main/src/ingest/publisher.ts'),
      frame(5, 'pack', 'file:///work/main/node_modules/msgpackr/pack.js'),
    ],
    startTime: 1_000_000,
    samples,
    timeDeltas: samples.map(() => 1_000),
  };
}

test('busy shares per area and function over the window only, idle apart', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-cpuprofile-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // 100 ms before the window (all publish path), then 100 ms in it: 50 idle, 30 delivery, 10 GC, 10 LMDB.
  const p = profile([
    [4, 100],
    [1, 50],
    [2, 30],
    [3, 10],
    [5, 10],
  ]);
  const file = join(dir, 'CPU.20261127.170000.4242.0.001.cpuprofile');
  writeFileSync(file, JSON.stringify(p));
  writeFileSync(join(dir, 'CPU.20261127.170000.999.0.001.cpuprofile'), JSON.stringify(p)); // another process
  // The window in shared monotonic ms: the profile's clock is microseconds of the same clock.
  const s = summarizeProfile(file, { fromMono: 1_100.5, toMono: 1_200 });
  assert.equal(s.windowS, 0.1);
  assert.equal(s.busyPct, 50);
  assert.deepEqual(s.areas, [
    { name: 'delivery engine', pct: 60 },
    { name: 'garbage collector', pct: 20 },
    { name: 'LMDB state (index, cursors)', pct: 20 },
  ]);
  assert.equal(s.functions[0]?.name, 'pump src/delivery/runtime.ts:1');
  // Without a window: the whole profile, the publish path first.
  assert.equal(summarizeProfile(file).areas[0]?.name, 'publish path (validate, route, encode)');
  const threads = summarizeProfiles(dir, 4242, { fromMono: 1_100.5, toMono: 1_200 });
  assert.equal(threads.length, 1, 'only the files of that process');
  assert.equal(threads[0]?.thread, 0);
});

test('areas by where a function is defined', () => {
  assert.equal(areaOf('encodeDeliveries', 'src/transports/grpc/frames.ts'), 'gRPC transport');
  assert.equal(areaOf('send', 'nm:ws'), 'WebSocket transport');
  assert.equal(areaOf('writev', ''), 'socket I/O and buffers');
  assert.equal(areaOf('match', 'src/routing/matcher.ts'), 'filters and routing');
  assert.equal(areaOf('mystery', 'somewhere.js'), 'other');
});
