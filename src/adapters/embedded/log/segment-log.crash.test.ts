// Kill -9 test: a child appends concurrently and prints what was acknowledged; it is SIGKILLed at a
// random moment; the reopened log must hold every acknowledged record exactly once, intact.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isCdsError } from '../../../errors/index.ts';
import { assertRecord, readRange, recordOf } from '../../../log/contract-helpers.ts';
import { SegmentLog } from './segment-log.ts';

const child = fileURLToPath(new URL('./crash-writer.ts', import.meta.url));

/** mulberry32: a seeded PRNG, so that a failing run can be replayed from the printed seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Ack {
  run: number;
  worker: number;
  seq: number;
  first: number;
  count: number;
}

async function runAndKill(dir: string, run: number, delayMs: number): Promise<Ack[]> {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, dir, String(run)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acks: Ack[] = [];
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  let killed = false;
  const lines = createInterface({ input: proc.stdout });
  const ready = new Promise<void>((resolve, reject) => {
    proc.on('exit', () => reject(new Error('child exited before ready')));
    lines.on('line', (line) => {
      if (line === 'ready') return resolve();
      const [tag, w, s, f, n] = line.split(' ');
      if (tag === 'ack')
        acks.push({ run, worker: Number(w), seq: Number(s), first: Number(f), count: Number(n) });
    });
  });
  await ready;
  // While the child holds the log, nobody else may open it.
  await assert.rejects(SegmentLog.open(dir), (e) => isCdsError(e, 'DATA_DIR_LOCKED'));
  await new Promise((r) => setTimeout(r, delayMs));
  killed = proc.kill('SIGKILL');
  await exited;
  assert.ok(killed);
  return acks;
}

it('keeps every acknowledged record exactly once across kill -9', async () => {
  const seed = Number(process.env.CDS_CRASH_SEED ?? Date.now() % 1_000_000);
  console.log(`crash test seed ${seed} (CDS_CRASH_SEED=${seed} replays it)`);
  const rand = prng(seed);
  const root = await mkdtemp(join(tmpdir(), 'cds-crash-'));
  const dir = join(root, 'log');
  const acked: Ack[] = [];
  try {
    for (let run = 0; run < 5; run++) {
      const delay = 30 + Math.floor(rand() * 300);
      const acks = await runAndKill(dir, run, delay);
      acked.push(...acks);
      const log = await SegmentLog.open(dir, { segmentBytes: 64 * 1024 });
      try {
        await log.verify();
        for (const a of acked) {
          for (let i = 0; i < a.count; i++) {
            const want = recordOf(
              `k${a.worker % 4}`,
              `${a.run}-${a.worker}-${a.seq}-${i}`,
              100 + ((a.seq * 31 + i) % 400),
            );
            assertRecord(await log.readOne(0, a.first + i), want, { partition: 0, offset: a.first + i });
          }
        }
        const { first, next } = log.extents()[0]!;
        const all = await readRange(log, 0, first, next);
        assert.equal(all.length, next - first, 'dense');
        const ids = new Set<string>();
        for (const r of all) {
          const id = r.headers.id!;
          assert.ok(!ids.has(id), `record ${id} stored twice`);
          ids.add(id);
        }
        console.log(
          `run ${run}: killed after ${delay} ms, ${acks.length} batches acknowledged, log holds ${next} records`,
        );
      } finally {
        await log.close();
      }
    }
    assert.ok(acked.length > 0, 'the children acknowledged something');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
