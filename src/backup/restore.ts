/**
 * Restoring a backup into a new data directory (ADR 0014): the manifest and every file's size and
 * SHA-256 are checked while the files are copied into a staging folder beside the target; the log
 * then gets a new epoch (positions keep their offsets; those handed out before are refused with
 * EPOCH_MISMATCH), its extents must be the manifest's, and only then is the staging folder renamed
 * to the target. A refused or failed restore leaves the target as it was.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rename, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CdsError, isCdsError } from '../errors/index.ts';
import { checkEmptyTarget, foldersOf, GrowingCopy, makePrivateDir, removeQuietly, syncDir } from './files.ts';
import { readManifest, type Manifest } from './manifest.ts';

/** What the restored log reports after it was given its new epoch. */
export interface ReEpoched {
  readonly epoch: string;
  readonly extents: readonly { readonly partition: number; readonly first: number; readonly next: number }[];
}

/** The outcome of a restore. */
export interface RestoreResult {
  readonly dataDir: string;
  /** The restored log's new epoch, and the backed-up one. */
  readonly epoch: string;
  readonly previousEpoch: string;
  readonly extents: ReEpoched['extents'];
  readonly files: number;
  readonly bytes: number;
  readonly ms: number;
}

/**
 * Restores the backup in `from` into `dataDir` (absolute; absent or empty). `reEpoch` opens the
 * copied log with a new epoch, checks every frame, and reports its epoch and extents (the
 * composition, cli/backup.ts, gives the embedded log's).
 */
export async function restoreBackup(
  from: string,
  dataDir: string,
  reEpoch: (logDir: string) => Promise<ReEpoched>,
): Promise<RestoreResult> {
  const t0 = performance.now();
  const isDir = await stat(from).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!isDir)
    throw new CdsError('NOT_FOUND', `no backup directory ${from}`, {
      details: { errors: [{ path: 'from', code: 'not_found', message: 'an existing backup directory' }] },
    });
  await checkEmptyTarget(dataDir, 'data-dir');
  const manifest = await readManifest(from);
  await checkListed(from, manifest);

  const staging = join(dirname(dataDir), `.${basename(dataDir)}.restoring-${randomBytes(4).toString('hex')}`);
  await makePrivateDir(staging);
  try {
    for (const f of manifest.files) {
      const dst = join(staging, f.path);
      await makePrivateDir(dirname(dst));
      const c = await GrowingCopy.open(join(from, f.path), dst).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw corrupt(from, f.path, 'is missing');
        throw e;
      });
      try {
        await c.extendTo();
      } catch (e) {
        await c.abort();
        throw e;
      }
      const sha = await c.finish();
      if (c.bytes !== f.bytes)
        throw corrupt(from, f.path, `has ${c.bytes} bytes, the manifest says ${f.bytes}`);
      if (sha !== f.sha256) throw corrupt(from, f.path, `has SHA-256 ${sha}, the manifest says ${f.sha256}`);
    }
    const log = await reEpoch(join(staging, 'log')).catch((e: unknown) => {
      if (isCdsError(e, 'DATA_CORRUPT')) throw corrupt(from, 'log/', e.message);
      throw e;
    });
    const want = JSON.stringify(manifest.extents);
    if (JSON.stringify(log.extents) !== want)
      throw corrupt(from, 'log/', `holds ${JSON.stringify(log.extents)}, the manifest says ${want}`);
    for (const d of foldersOf(
      staging,
      manifest.files.map((f) => f.path),
    ))
      await syncDir(d);
    // The target is absent or empty (checked above): an empty one is replaced by the staging folder.
    await rmdir(dataDir).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    });
    await rename(staging, dataDir);
    await syncDir(dirname(dataDir));
    return {
      dataDir,
      epoch: log.epoch,
      previousEpoch: manifest.epoch,
      extents: log.extents,
      files: manifest.files.length,
      bytes: manifest.bytes,
      ms: Math.round(performance.now() - t0),
    };
  } catch (e) {
    await removeQuietly(staging);
    throw e;
  }
}

function corrupt(from: string, file: string, why: string): CdsError {
  return new CdsError('BACKUP_CORRUPT', `backup ${from}: ${file} ${why}`, {
    details: { backup: from, file },
  });
}

/** Every listed file must be there (a cheap check before anything is copied). */
async function checkListed(from: string, manifest: Manifest): Promise<void> {
  const present = new Set<string>();
  for (const dir of new Set(manifest.files.map((f) => dirname(f.path)))) {
    const names = await readdir(join(from, dir)).catch(() => [] as string[]);
    for (const n of names) present.add(dir === '.' ? n : `${dir}/${n}`);
  }
  const missing = manifest.files.find((f) => !present.has(f.path));
  if (missing !== undefined) throw corrupt(from, missing.path, 'is missing');
}
