// SegmentLog beyond the contract: torn tails, corruption, segment roll and index rebuild, lock,
// epoch, and I/O failures.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { FileHandle } from 'node:fs/promises';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { isCdsError } from '../../../errors/index.ts';
import { assertRecord, recordOf } from '../../../log/contract-helpers.ts';
import type { AppendRecord, Appended } from '../../../log/port.ts';
import { SegmentLog } from './segment-log.ts';

let root: string;
let dir: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'cds-seglog-'));
  dir = join(root, 'log');
});
afterEach(() => rm(root, { recursive: true, force: true }));

/** Appends `batches` batches of 3 records; returns them with the committed file size after each. */
async function fill(log: SegmentLog, batches: number, size = 200) {
  const out: { recs: AppendRecord[]; pos: Appended[]; endBytes: number }[] = [];
  for (let b = 0; b < batches; b++) {
    const recs = [0, 1, 2].map((i) => recordOf('k', `b${b}-${i}`, size));
    const pos = await log.append(recs);
    out.push({ recs, pos, endBytes: log.storedBytes() });
  }
  return out;
}

async function assertHolds(log: SegmentLog, batches: Awaited<ReturnType<typeof fill>>) {
  const n = batches.length * 3;
  assert.deepEqual(log.extents(), [{ partition: 0, first: 0, next: n }]);
  const all = await log.read(0, 0, n + 10);
  assert.equal(all.length, n);
  batches.forEach((b, bi) => b.recs.forEach((r, i) => assertRecord(all[bi * 3 + i], r, b.pos[i]!)));
}

const seg0 = () => join(dir, `${'0'.padStart(20, '0')}.seg`);

describe('SegmentLog torn and corrupt tails', () => {
  it('cuts a frame truncated in the middle', async () => {
    const log = await SegmentLog.open(dir);
    const b = await fill(log, 5);
    await log.close();
    await truncate(seg0(), b[3]!.endBytes + 17);
    const again = await SegmentLog.open(dir);
    await assertHolds(again, b.slice(0, 4));
    assert.equal((await stat(seg0())).size, b[3]!.endBytes);
    const [next] = await again.append([recordOf('k', 'after')]);
    assert.equal(next!.offset, 12);
    await again.close();
  });

  it('cuts garbage appended after the last frame', async () => {
    const log = await SegmentLog.open(dir);
    const b = await fill(log, 5);
    await log.close();
    await appendFile(seg0(), Buffer.from('this is not a frame at all, just bytes'));
    let again = await SegmentLog.open(dir);
    await assertHolds(again, b);
    await again.close();
    // Garbage that looks like a frame header claiming a huge length.
    const fake = Buffer.alloc(40, 0xab);
    fake.writeUInt32LE(1000, 0);
    await appendFile(seg0(), fake);
    again = await SegmentLog.open(dir);
    await assertHolds(again, b);
    assert.equal((await stat(seg0())).size, b[4]!.endBytes);
    await again.close();
  });

  it('cuts a last frame with a flipped byte', async () => {
    const log = await SegmentLog.open(dir);
    const b = await fill(log, 5);
    await log.close();
    const bytes = await readFile(seg0());
    bytes[b[3]!.endBytes + 100]! ^= 0x01;
    await writeFile(seg0(), bytes);
    const again = await SegmentLog.open(dir);
    await assertHolds(again, b.slice(0, 4));
    await again.close();
  });

  it('reports corruption inside a sealed segment as DATA_CORRUPT', async () => {
    const log = await SegmentLog.open(dir, { segmentBytes: 2048 });
    await fill(log, 10);
    await log.close();
    const segs = (await readdir(dir)).filter((n) => n.endsWith('.seg')).sort();
    assert.ok(segs.length > 2);
    const bytes = await readFile(join(dir, segs[0]!));
    bytes[bytes.length - 50]! ^= 0x01;
    await writeFile(join(dir, segs[0]!), bytes);
    const again = await SegmentLog.open(dir, { segmentBytes: 2048 });
    await assert.rejects(again.verify(), (e) => isCdsError(e, 'DATA_CORRUPT'));
    await rm(join(dir, segs[0]!.replace('.seg', '.idx')));
    await assert.rejects(again.read(0, 0, 100), (e) => isCdsError(e, 'DATA_CORRUPT'));
    await again.close();
  });
});

describe('SegmentLog segments and index', () => {
  it('rolls segments and rebuilds a deleted or short index', async () => {
    const opts = { segmentBytes: 4096 };
    const log = await SegmentLog.open(dir, opts);
    const b = await fill(log, 40);
    await log.verify();
    await log.close();
    const idx = (await readdir(dir)).filter((n) => n.endsWith('.idx')).sort();
    assert.ok(idx.length >= 5, `${idx.length} segments`);
    const want = (await stat(join(dir, idx[1]!))).size;
    await rm(join(dir, idx[1]!));
    await truncate(join(dir, idx[2]!), 12);
    const again = await SegmentLog.open(dir, opts);
    await assertHolds(again, b);
    assert.equal((await stat(join(dir, idx[1]!))).size, want, 'index rebuilt');
    assert.deepEqual(await again.readOne(0, 61), (await again.read(0, 61, 1))[0]);
    assertRecord(await again.readOne(0, 61), b[20]!.recs[1]!, b[20]!.pos[1]!);
    assert.equal(await again.trim(0, 60), (await again.read(0, 0, 1))[0]!.offset);
    assert.ok(again.extents()[0]!.first > 0 && again.extents()[0]!.first <= 60);
    await again.close();
  });

  it('keeps the epoch across reopen, and takes a new one when asked', async () => {
    const log = await SegmentLog.open(dir);
    assert.match(log.epoch, /^[0-9a-f]{16}$/);
    const b = await fill(log, 2);
    await log.close();
    const same = await SegmentLog.open(dir);
    assert.equal(same.epoch, log.epoch);
    await same.close();
    const fresh = await SegmentLog.open(dir, { newEpoch: true });
    assert.notEqual(fresh.epoch, log.epoch);
    await assertHolds(fresh, b);
    await fresh.close();
  });
});

describe('SegmentLog lock', () => {
  it('refuses a second opener and takes over a stale lock', async () => {
    const log = await SegmentLog.open(dir);
    await assert.rejects(SegmentLog.open(dir), (e) => isCdsError(e, 'DATA_DIR_LOCKED'));
    await log.close();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(join(dir, 'LOCK'), String(dead));
    const again = await SegmentLog.open(dir);
    assert.equal((await readFile(join(dir, 'LOCK'), 'utf8')).trim(), String(process.pid));
    await again.close();
    await assert.rejects(stat(join(dir, 'LOCK')), /ENOENT/);
  });
});

describe('SegmentLog I/O failures', () => {
  it('rejects with STORAGE_UNAVAILABLE and leaves no half frame', async () => {
    const log = await SegmentLog.open(dir);
    const b = await fill(log, 2);
    const fh = (log as unknown as { fh: FileHandle }).fh;
    const writev = fh.writev.bind(fh);
    fh.writev = async (buffers: readonly NodeJS.ArrayBufferView[], position?: number | null) => {
      await fh.write(Buffer.from(buffers[0]!.buffer).subarray(0, 30), 0, 30, position ?? 0);
      throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    };
    const failed = await Promise.allSettled([
      log.append([recordOf('k', 'x')]),
      log.append([recordOf('k', 'y')]),
    ]);
    for (const f of failed) {
      assert.equal(f.status, 'rejected');
      assert.ok(isCdsError(f.reason, 'STORAGE_UNAVAILABLE') && f.reason.retriable);
    }
    fh.writev = writev;
    const more = await fill(log, 1);
    assert.equal(more[0]!.pos[0]!.offset, 6);
    await log.close();
    const again = await SegmentLog.open(dir);
    await assertHolds(again, [...b, ...more]);
    await again.close();
  });
});

describe('SegmentLog header encoding', () => {
  it('round-trips lone surrogates (JSON form) and a __proto__ header name (packed form)', async () => {
    const log = await SegmentLog.open(dir);
    const recs: AppendRecord[] = [
      { key: 'h', timestamp: 1, headers: { lone: 'a\ud800b', ok: 'é' }, payload: new Uint8Array([1]) },
      {
        key: 'h',
        timestamp: 2,
        headers: JSON.parse('{"__proto__":"x","b":""}') as Record<string, string>,
        payload: new Uint8Array(0),
      },
    ];
    const pos = await log.append(recs);
    const got = await log.read(0, 0, 10);
    recs.forEach((r, i) => assertRecord(got[i], r, pos[i]!));
    assert.equal(Object.getPrototypeOf(got[1]!.headers), Object.prototype);
    assert.deepEqual(Object.keys(got[1]!.headers), ['__proto__', 'b']);
    await log.close();
  });
});

describe('SegmentLog group commit', () => {
  it('coalesces concurrent appends into far fewer syncs than appends', async () => {
    const log = await SegmentLog.open(dir);
    const fh = (log as unknown as { fh: FileHandle }).fh;
    const datasync = fh.datasync.bind(fh);
    let syncs = 0;
    fh.datasync = () => {
      syncs++;
      return datasync();
    };
    const pos = await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.append([recordOf('g', `g-${i}`)])),
    );
    assert.deepEqual(
      pos.map((p) => p[0]!.offset),
      Array.from({ length: 200 }, (_, i) => i),
    );
    assert.ok(syncs <= 10, `${syncs} syncs for 200 appends`);
    await log.close();
  });
});
