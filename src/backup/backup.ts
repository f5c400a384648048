/**
 * Writing a backup of an embedded data directory (ADR 0014), while the service runs or offline.
 * The order makes the copy consistent without stopping anything:
 *
 * 1. each LMDB environment from one read snapshot (state first, then subscriptions, rules,
 *    webhooks, ledger), and the decision-index files up to the lengths the state snapshot
 *    committed: so every cursor and the index checkpoint are at or before the log's extent below;
 * 2. the log: a snapshot of its acknowledged extent and each segment's committed bytes, copied;
 *    then again (at least twice, at most four times), copying only what was appended meanwhile
 *    (segments only grow) and fsyncing it, until a pass copies little: the last snapshot's extent
 *    is the backup's, and little is left to do after it;
 * 3. small files (the generated admin key);
 * 4. manifest.json, last and atomically: a directory without it is an unfinished backup.
 *
 * Nothing here imports an adapter: the composition root hands in the stores (BackupParts).
 */
import { constants } from 'node:fs';
import { access, copyFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CdsError } from '../errors/index.ts';
import {
  checkEmptyTarget,
  foldersOf,
  GrowingCopy,
  Throttle,
  hashFile,
  makePrivateDir,
  syncDir,
  writeAtomic,
} from './files.ts';
import { MANIFEST_FILE, type Manifest, type ManifestFile } from './manifest.ts';

/** The log as a backup sees it (the embedded SegmentLog's snapshot()). */
export interface LogSource {
  snapshot(): {
    readonly dir: string;
    readonly epoch: string;
    readonly first: number;
    readonly next: number;
    readonly segments: readonly {
      readonly base: number;
      readonly file: string;
      readonly index: string;
      readonly bytes: number;
      readonly sealed: boolean;
    }[];
  };
}

/** An LMDB store: copies itself from one read snapshot; may name more files to copy with it. */
export interface EnvSource {
  /** Its folder in the data directory (and in the backup). */
  readonly folder: string;
  backup(
    dir: string,
  ): Promise<void | readonly { readonly file: string; readonly bytes: number | undefined }[]>;
}

/** What a backup copies: handed in by the composition root (embedded mode only). */
export interface BackupParts {
  readonly dataDir: string;
  readonly log: LogSource;
  /** In this order; the state store (whose snapshot names the index files) first. */
  readonly envs: readonly EnvSource[];
  /** Small files of the data directory copied whole when present (relative paths). */
  readonly files: readonly string[];
}

/** Progress of a running backup. */
export interface BackupProgress {
  phase: 'stores' | 'log' | 'manifest' | 'done';
  files: number;
  bytes: number;
}

/** Options of {@link writeBackup}. */
export interface BackupOptions {
  readonly mode: 'online' | 'offline';
  /** Updated as the backup goes (read by the status endpoint). */
  readonly progress?: BackupProgress;
  /** Stop the log passes (at least 2) once one copies fewer bytes than this (default 256 KiB). */
  readonly settleBytes?: number;
  /** At most this many log passes (default 4). */
  readonly maxPasses?: number;
  /** Pace of the copies of the log and index files, in bytes per second (default: unpaced). */
  readonly maxBytesPerSecond?: number;
  /** Called between steps (tests: to kill the process at a known point). */
  readonly onStep?: (step: string) => Promise<void> | void;
}

const LOG = 'log';

/**
 * Writes a backup of `parts` into `target` (absolute; absent or empty, else TARGET_NOT_EMPTY and
 * nothing written); resolves with the manifest it wrote last.
 */
export async function writeBackup(
  parts: BackupParts,
  target: string,
  opts: BackupOptions,
): Promise<Manifest> {
  await checkEmptyTarget(target, 'path');
  const startedAt = new Date().toISOString();
  const progress = opts.progress ?? { phase: 'stores', files: 0, bytes: 0 };
  const files: ManifestFile[] = [];
  const add = (f: ManifestFile) => {
    files.push(f);
    progress.files++;
    progress.bytes += f.bytes;
  };
  await makePrivateDir(target);
  const throttle = new Throttle(opts.maxBytesPerSecond);

  // 1. The LMDB environments, each from one read snapshot; the index files their snapshot names.
  progress.phase = 'stores';
  for (const env of parts.envs) {
    const dir = join(target, env.folder);
    await makePrivateDir(dir);
    const extra = (await env.backup(dir)) ?? [];
    // Open every named file before copying any: a run merged away is deleted some seconds later.
    const copies = await Promise.all(
      extra.map(async (x) => ({ x, copy: await GrowingCopy.open(x.file, join(dir, basename(x.file))) })),
    );
    for (const { x, copy } of copies) {
      await copy.extendTo(x.bytes, throttle);
      add({ path: `${env.folder}/${basename(x.file)}`, bytes: copy.bytes, sha256: await copy.finish() });
    }
    add({ path: `${env.folder}/data.mdb`, ...(await hashFile(join(dir, 'data.mdb'))) });
    await opts.onStep?.(`env:${env.folder}`);
  }

  // 2. The log, in passes: each copies what the previous left behind, up to a new snapshot.
  progress.phase = 'log';
  const logDir = join(target, LOG);
  await makePrivateDir(logDir);
  const first = parts.log.snapshot();
  await copyFile(join(first.dir, 'meta.json'), join(logDir, 'meta.json'));
  add({ path: `${LOG}/meta.json`, ...(await hashFile(join(logDir, 'meta.json'))) });
  /** Copies by segment base, in base order. */
  const segs = new Map<number, { file: string; copy: GrowingCopy }>();
  let last = first;
  let lastAt = Date.now();
  let passes = 0;
  try {
    for (;;) {
      if (passes > 0) lastAt = Date.now();
      const snap = passes === 0 ? first : parts.log.snapshot();
      passes++;
      let copied = 0;
      const grown: GrowingCopy[] = [];
      for (const s of snap.segments) {
        let c = segs.get(s.base)?.copy;
        if (c === undefined) {
          c = await GrowingCopy.open(join(snap.dir, s.file), join(logDir, s.file)).catch((e: unknown) => {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
            throw e;
          });
          if (c === undefined) {
            // Trimmed since the snapshot, and with it every segment before it: the copies of those
            // would leave a hole, so the backup starts after it.
            for (const [base, x] of segs) {
              if (base > s.base) continue;
              await x.copy.abort();
              await rm(join(logDir, x.file), { force: true });
              segs.delete(base);
            }
            continue;
          }
          segs.set(s.base, { file: s.file, copy: c });
        }
        const n = await c.extendTo(s.bytes, throttle);
        if (n > 0) grown.push(c);
        copied += n;
        progress.bytes += n;
      }
      // Durable now, so that after the last snapshot only its small delta remains to be synced.
      await Promise.all(grown.map((c) => c.sync()));
      last = snap;
      await opts.onStep?.(`log:pass${passes}`);
      const settled = passes >= 2 && copied < (opts.settleBytes ?? 256 * 1024);
      if (settled || passes >= (opts.maxPasses ?? 4)) break;
    }
    if (segs.size === 0) throw new CdsError('STORAGE_UNAVAILABLE', 'backup: no log segment could be copied');
    for (const [base, x] of [...segs].sort((a, b) => a[0] - b[0])) {
      segs.delete(base);
      files.push({ path: `${LOG}/${x.file}`, bytes: x.copy.bytes, sha256: await x.copy.finish() });
      progress.files++;
    }
  } finally {
    for (const x of segs.values()) await x.copy.abort();
  }
  const kept = files.filter((f) => f.path.endsWith('.seg')).map((f) => Number(basename(f.path, '.seg')));
  const logFirst = Math.min(...kept);
  // Sealed segments' indexes are durable and final; the last segment's is rebuilt at open.
  for (const s of last.segments) {
    if (!s.sealed || s.base < logFirst) continue;
    const c = await GrowingCopy.open(join(last.dir, s.index), join(logDir, s.index)).catch(() => undefined);
    if (c === undefined) continue; // trimmed meanwhile, or missing: rebuilt from the segment when read
    await c.extendTo();
    add({ path: `${LOG}/${s.index}`, bytes: c.bytes, sha256: await c.finish() });
  }

  // 3. Small files.
  for (const f of parts.files) {
    const src = join(parts.dataDir, f);
    const readable = await access(src, constants.R_OK).then(
      () => true,
      () => false,
    );
    if (!readable) continue;
    const c = await GrowingCopy.open(src, join(target, f));
    await c.extendTo();
    add({ path: f, bytes: c.bytes, sha256: await c.finish() });
  }

  // 4. Directory entries durable, then the manifest.
  progress.phase = 'manifest';
  const folders = foldersOf(
    target,
    files.map((f) => f.path),
  );
  await Promise.all(folders.map((d) => syncDir(d)));
  await opts.onStep?.('manifest');
  const manifest: Manifest = {
    format: 'cds-backup',
    version: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    mode: opts.mode,
    epoch: first.epoch,
    extents: [{ partition: 0, first: logFirst, next: last.next }],
    extentTakenAt: new Date(lastAt).toISOString(),
    logPasses: passes,
    sourceNextAtFinish: parts.log.snapshot().next,
    files,
    bytes: files.reduce((n, f) => n + f.bytes, 0),
  };
  await writeAtomic(join(target, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  progress.phase = 'done';
  return manifest;
}
