/**
 * File helpers of backup and restore: the empty-target check, copying a file's prefix while hashing
 * it (in steps, so that a file that grows can be copied further later), fsync of files and folders.
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { CdsError } from '../errors/index.ts';

const CHUNK = 1 << 20;

/**
 * Checks that `dir` can receive a backup or a restore: absolute, not a file, and absent or empty.
 * Throws VALIDATION_FAILED (naming `field`) or TARGET_NOT_EMPTY; writes nothing.
 */
export async function checkEmptyTarget(dir: string, field: string): Promise<void> {
  if (!isAbsolute(dir))
    throw new CdsError('VALIDATION_FAILED', `${field}: '${dir}' is not an absolute path`, {
      details: { errors: [{ path: field, code: 'absolute_path', message: 'an absolute path' }] },
    });
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR')
      throw new CdsError('VALIDATION_FAILED', `${field}: '${dir}' is a file, not a directory`, {
        details: { errors: [{ path: field, code: 'not_a_directory', message: 'a directory' }] },
      });
    throw e;
  }
  if (entries.length > 0)
    throw new CdsError(
      'TARGET_NOT_EMPTY',
      `${dir} is not empty (${entries.length} entries, e.g. ${entries.slice(0, 3).join(', ')}); nothing was written`,
      { details: { path: dir, entries: entries.slice(0, 10) } },
    );
}

/** Creates `dir` (and its parents) private to the owner: backups hold secrets (keys, webhook secrets). */
export async function makePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

/** Paces copies to at most a number of bytes per second (undefined: as fast as the disk goes). */
export class Throttle {
  readonly #start = performance.now();
  #bytes = 0;

  constructor(private readonly bytesPerSecond: number | undefined) {}

  /** Counts `n` bytes copied; resolves when the pace allows more. */
  async take(n: number): Promise<void> {
    if (this.bytesPerSecond === undefined) return;
    this.#bytes += n;
    const wait = this.#start + (this.#bytes / this.bytesPerSecond) * 1000 - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  }
}

/**
 * A copy of one source file, extended step by step (the source only grows: segment files, row
 * files), hashed as it is written.
 */
export class GrowingCopy {
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;

  private constructor(
    private readonly src: FileHandle,
    private readonly dst: FileHandle,
  ) {}

  /** Opens the source (now: it may be deleted later, the handle keeps it) and creates the target. */
  static async open(src: string, dst: string): Promise<GrowingCopy> {
    const s = await open(src, 'r');
    try {
      return new GrowingCopy(s, await open(dst, 'wx', 0o600));
    } catch (e) {
      await s.close();
      throw e;
    }
  }

  /** Bytes copied so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Copies the source's bytes from where the last step ended to `upTo` (the whole file when undefined), paced by `throttle`; returns bytes copied. */
  async extendTo(upTo?: number, throttle?: Throttle): Promise<number> {
    const end = upTo ?? (await this.src.stat()).size;
    const start = this.#bytes;
    const buf = Buffer.allocUnsafe(CHUNK);
    while (this.#bytes < end) {
      const want = Math.min(CHUNK, end - this.#bytes);
      const { bytesRead } = await this.src.read(buf, 0, want, this.#bytes);
      if (bytesRead === 0)
        throw new CdsError(
          'STORAGE_UNAVAILABLE',
          `backup: a source file ended at ${this.#bytes}, before ${end}`,
        );
      const chunk = buf.subarray(0, bytesRead);
      await this.dst.write(chunk, 0, bytesRead, this.#bytes);
      this.#hash.update(chunk);
      this.#bytes += bytesRead;
      await throttle?.take(bytesRead);
    }
    return this.#bytes - start;
  }

  /** fsyncs what was copied so far (between passes: the last fsync then has little left to write). */
  async sync(): Promise<void> {
    await this.dst.sync();
  }

  /** fsyncs the copy, closes both files, and returns the copy's SHA-256. */
  async finish(): Promise<string> {
    try {
      await this.dst.sync();
    } finally {
      await this.dst.close();
      await this.src.close();
    }
    return this.#hash.digest('hex');
  }

  /** Closes both files (after a failure). */
  async abort(): Promise<void> {
    await this.dst.close().catch(() => undefined);
    await this.src.close().catch(() => undefined);
  }
}

/** SHA-256 and size of a whole file (fsync'd first: a file another writer produced, e.g. an LMDB copy). */
export async function hashFile(path: string): Promise<{ bytes: number; sha256: string }> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return { bytes: pos, sha256: hash.digest('hex') };
  } finally {
    await fh.close();
  }
}

/** fsyncs a directory so that the entries made in it survive a crash. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a small file atomically: temp file, fsync, rename, directory fsync. */
export async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

/** Whether `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Every folder (relative) on the way to each file, deepest first, for the final directory fsyncs. */
export function foldersOf(root: string, paths: readonly string[]): string[] {
  const dirs = new Set<string>([root]);
  for (const p of paths) {
    let d = dirname(join(root, p));
    while (d.length > root.length) {
      dirs.add(d);
      d = dirname(d);
    }
  }
  return [...dirs].sort((a, b) => b.length - a.length);
}

/** Removes a directory tree, ignoring failures (clean-up after a failed restore). */
export async function removeQuietly(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
