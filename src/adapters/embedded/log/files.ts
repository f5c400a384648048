/**
 * File-system helpers of the segment log: directory fsync, atomic small files, the metadata file
 * (epoch) and the single-writer lock.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CdsError } from '../../../errors/index.ts';

/** Name of the metadata file in the log directory. */
export const META_FILE = 'meta.json';
/** Name of the lock file in the log directory. */
export const LOCK_FILE = 'LOCK';

/** What meta.json holds. */
export interface LogMeta {
  readonly format: 'cds-segment-log';
  readonly version: 1;
  /** Identifier of this incarnation of the log (16 hex characters). */
  readonly epoch: string;
  readonly partitions: 1;
  readonly createdAt: string;
}

/** A fresh random epoch. */
export function newEpochId(): string {
  return randomBytes(8).toString('hex');
}

/** fsyncs a directory so that entries created, renamed or removed in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a small file atomically: temp file, fsync, rename over the target, fsync the directory. */
export async function writeFileAtomic(dir: string, name: string, data: string): Promise<void> {
  const tmp = join(dir, `${name}.${process.pid}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, name));
  await fsyncDir(dir);
}

/** Reads meta.json, or undefined when it does not exist; DATA_CORRUPT when it is unreadable. */
export async function readMeta(dir: string): Promise<LogMeta | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, META_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const m = JSON.parse(text) as Partial<LogMeta>;
    if (
      m.format === 'cds-segment-log' &&
      m.version === 1 &&
      typeof m.epoch === 'string' &&
      m.epoch.length > 0
    ) {
      return m as LogMeta;
    }
  } catch {
    // reported below
  }
  throw new CdsError('DATA_CORRUPT', `${join(dir, META_FILE)} is not a segment-log metadata file`);
}

/** Writes meta.json atomically with the given epoch. */
export async function writeMeta(dir: string, epoch: string): Promise<LogMeta> {
  const meta: LogMeta = {
    format: 'cds-segment-log',
    version: 1,
    epoch,
    partitions: 1,
    createdAt: new Date().toISOString(),
  };
  await writeFileAtomic(dir, META_FILE, JSON.stringify(meta) + '\n');
  return meta;
}

function alive(pid: number): boolean {
  // Our own pid means another SegmentLog of this process holds the directory: also a conflict.
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An empty or unparsable lock younger than this may be a lock being written right now. */
const FRESH_LOCK_MS = 10_000;

/**
 * Takes the directory's lock file (created with O_EXCL, holding our pid). A lock whose pid is dead is
 * stale (the holder was killed) and is taken over; a live one gives DATA_DIR_LOCKED.
 */
export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx');
      try {
        await fh.writeFile(String(process.pid));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsyncDir(dir);
      return () => releaseLock(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let text = '';
    let ageMs = Infinity;
    try {
      text = await readFile(path, 'utf8');
      ageMs = Date.now() - (await stat(path)).mtimeMs;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile: try again
      throw e;
    }
    const pid = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
    const held = Number.isSafeInteger(pid) && pid > 0 ? alive(pid) : ageMs < FRESH_LOCK_MS;
    if (held) {
      throw new CdsError(
        'DATA_DIR_LOCKED',
        `the log directory ${dir} is locked by process ${text.trim() || '?'}`,
        {
          details: { lockFile: path, pid: Number.isNaN(pid) ? null : pid },
        },
      );
    }
    // Stale: its holder died without releasing it. Remove it and race for O_EXCL again.
    await rm(path, { force: true });
  }
  throw new CdsError('DATA_DIR_LOCKED', `could not take the lock ${path}`, { details: { lockFile: path } });
}

async function releaseLock(path: string): Promise<void> {
  try {
    if ((await readFile(path, 'utf8')).trim() === String(process.pid)) await rm(path, { force: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
