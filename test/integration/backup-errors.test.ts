/**
 * Backup and restore refusals (ADR 0014): bad requests, a non-empty target, a second backup at once,
 * an unfinished or corrupt backup, a running service for the offline form: each a precise error,
 * and nothing changed.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BackupService, type BackupParts } from '../../src/backup/index.ts';
import { runCds as cds } from '../helpers/cli.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { dec, publish } from '../model/harness.ts';

describe('backup and restore refusals', { timeout: 60_000 }, () => {
  let t: TestApp;
  const root = mkdtempSync(join(tmpdir(), 'cds-backup-errors-'));
  let good = '';
  before(async () => {
    t = await startTestApp();
    await publish(
      t,
      Array.from({ length: 50 }, (_, i) => dec(i + 1)),
    );
    good = join(root, 'good');
    const r = await t.request('POST', '/v1/admin/backups', { body: { path: good } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    await t.app.ctx.backups.idle();
    assert.equal(t.app.ctx.backups.get(r.body.id).state, 'done');
  });
  after(async () => {
    await t?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('a bad request is refused with the failing field; nothing is written', async () => {
    const cases: [unknown, number, string, string][] = [
      [undefined, 400, 'VALIDATION_FAILED', '/path'],
      [{}, 400, 'VALIDATION_FAILED', '/path'],
      [{ path: 'relative/dir' }, 400, 'VALIDATION_FAILED', '/path'],
      [{ path: join(root, 'x'), compact: true }, 400, 'VALIDATION_FAILED', '/compact'],
      [{ path: join(root, 'x'), maxBytesPerSecond: 10 }, 400, 'VALIDATION_FAILED', '/maxBytesPerSecond'],
      [{ path: join(t.dataDir, 'inside') }, 400, 'VALIDATION_FAILED', '/path'],
    ];
    for (const [body, status, code, path] of cases) {
      const r = await t.request('POST', '/v1/admin/backups', body === undefined ? {} : { body });
      assert.equal(r.status, status, JSON.stringify(body));
      assert.equal(r.body.error.code, code);
      assert.ok(
        (r.body.error.details?.errors ?? []).some((e: { path: string }) => e.path === path),
        JSON.stringify(r.body),
      );
    }
    assert.equal(existsSync(join(root, 'x')), false);
    assert.equal(existsSync(join(t.dataDir, 'inside')), false);
  });

  it('a backup into a non-empty directory is refused (409 TARGET_NOT_EMPTY) and changes nothing', async () => {
    const dir = join(root, 'busy');
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep.txt'), 'mine');
    const r = await t.request('POST', '/v1/admin/backups', { body: { path: dir } });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'TARGET_NOT_EMPTY');
    assert.match(r.body.error.message, /busy is not empty/);
    assert.deepEqual(readdirSync(dir), ['keep.txt']);
    assert.equal(readFileSync(join(dir, 'keep.txt'), 'utf8'), 'mine');
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    const f = await t.request('POST', '/v1/admin/backups', { body: { path: file } });
    assert.equal(f.status, 400);
    assert.equal(f.body.error.details.errors[0].code, 'not_a_directory');
  });

  it('needs admin:>', async () => {
    const k = await t.request('POST', '/v1/keys', {
      body: { name: 'reader', scopes: ['subscribe:decisions.>'] },
    });
    assert.equal(k.status, 201, JSON.stringify(k.body));
    const r = await t.request('POST', '/v1/admin/backups', {
      body: { path: join(root, 'denied') },
      key: k.body.key,
    });
    assert.equal(r.status, 403);
    assert.equal(existsSync(join(root, 'denied')), false);
  });

  it('one backup at a time: a second one meanwhile gets BACKUP_IN_PROGRESS (retriable)', async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const parts: BackupParts = {
      dataDir: join(root, 'fake-data'),
      log: {
        snapshot: () => ({ dir: root, epoch: 'e', first: 0, next: 0, segments: [] }),
      },
      envs: [{ folder: 'state', backup: () => gate }],
      files: [],
    };
    const svc = new BackupService(parts, t.app.ctx.audit);
    const first = await svc.start({ path: join(root, 'slow') }, 'test');
    assert.equal(first.state, 'running');
    await assert.rejects(
      svc.start({ path: join(root, 'second') }, 'test'),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'BACKUP_IN_PROGRESS');
        return true;
      },
    );
    assert.equal(existsSync(join(root, 'second')), false);
    release();
    await svc.idle();
    assert.equal(svc.get(first.id).state, 'failed'); // the fake log has no files: no manifest written
    assert.equal(existsSync(join(root, 'slow', 'manifest.json')), false);
  });

  it('restore refuses a missing backup, a non-empty target, an unfinished and a corrupt backup', async () => {
    const target = join(root, 'restored');
    const nope = await cds('restore', '--from', join(root, 'nope'), '--data-dir', target);
    assert.equal(nope.code, 2);
    assert.match(nope.err, /NOT_FOUND: no backup directory/);

    const busy = join(root, 'busy-target');
    mkdirSync(busy);
    writeFileSync(join(busy, 'x'), 'x');
    const b = await cds('restore', '--from', good, '--data-dir', busy);
    assert.match(b.err, /TARGET_NOT_EMPTY/);
    assert.deepEqual(readdirSync(busy), ['x']);

    const partial = join(root, 'partial');
    mkdirSync(join(partial, 'log'), { recursive: true });
    writeFileSync(join(partial, 'log', 'meta.json'), readFileSync(join(good, 'log', 'meta.json')));
    const p = await cds('restore', '--from', partial, '--data-dir', target);
    assert.equal(p.code, 2);
    assert.match(p.err, /BACKUP_INCOMPLETE: .*has no manifest\.json: the backup did not finish/);

    const bad = join(root, 'bad');
    // A copy of the good backup with one byte of a segment flipped.
    mkdirSync(bad);
    for (const dir of readdirSync(good, { withFileTypes: true })) {
      if (dir.isFile()) writeFileSync(join(bad, dir.name), readFileSync(join(good, dir.name)));
      else {
        mkdirSync(join(bad, dir.name));
        for (const f of readdirSync(join(good, dir.name)))
          writeFileSync(join(bad, dir.name, f), readFileSync(join(good, dir.name, f)));
      }
    }
    const seg = readdirSync(join(bad, 'log')).find((f) => f.endsWith('.seg')) as string;
    const bytes = readFileSync(join(bad, 'log', seg));
    bytes[100] = (bytes[100] as number) ^ 0xff;
    writeFileSync(join(bad, 'log', seg), bytes);
    const c = await cds('restore', '--from', bad, '--data-dir', target);
    assert.equal(c.code, 2);
    assert.match(
      c.err,
      new RegExp(`BACKUP_CORRUPT: backup .*: log/${seg} has SHA-256 [0-9a-f]{64}, the manifest says`),
    );
    rmSync(join(bad, 'rules', 'data.mdb'));
    const m = await cds('restore', '--from', bad, '--data-dir', target);
    assert.match(m.err, /BACKUP_CORRUPT: backup .*: rules\/data\.mdb is missing/);

    assert.equal(existsSync(target), false, 'a refused restore leaves no target');
    assert.deepEqual(
      readdirSync(root).filter((n) => n.includes('.restoring-')),
      [],
      'nor a staging folder',
    );
  });

  it('the offline form refuses a data directory a service holds (DATA_DIR_LOCKED), and works on a stopped one', async () => {
    const none = await cds(
      'backup',
      '--to',
      join(root, 'offline-0'),
      '--offline',
      '--data-dir',
      join(root, 'no-data'),
    );
    assert.match(none.err, /NOT_FOUND: .*no-data is not a cds data directory/);
    assert.equal(existsSync(join(root, 'no-data')), false);
    assert.equal(existsSync(join(root, 'offline-0')), false);
    const running = await cds(
      'backup',
      '--to',
      join(root, 'offline-1'),
      '--offline',
      '--data-dir',
      t.dataDir,
    );
    assert.equal(running.code, 2);
    assert.match(running.err, /DATA_DIR_LOCKED/);
    const t2 = await startTestApp();
    await publish(t2, [dec(1), dec(2), dec(3)]);
    await t2.close({ keep: true });
    try {
      const off = await cds('backup', '--to', join(root, 'offline-2'), '--offline', '--data-dir', t2.dataDir);
      assert.equal(off.code, 0, off.err);
      const summary = JSON.parse(off.out) as { extents: { next: number }[] };
      assert.equal(summary.extents[0]?.next, 3);
      const r = await cds(
        'restore',
        '--from',
        join(root, 'offline-2'),
        '--data-dir',
        join(root, 'offline-restored'),
      );
      assert.equal(r.code, 0, r.err);
      const t3 = await startTestApp({}, join(root, 'offline-restored'));
      try {
        const got = await t3.request('GET', '/v1/decisions?limit=10');
        assert.equal(got.body.items.length, 3);
      } finally {
        await t3.close({ keep: true });
      }
    } finally {
      rmSync(t2.dataDir, { recursive: true, force: true });
    }
  });
});
