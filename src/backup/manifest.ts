/**
 * The backup manifest (ADR 0014): written last, atomically, so that a directory without it is an
 * unfinished backup. It lists every file with its size and SHA-256, the log's extents and epoch.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CdsError } from '../errors/index.ts';

/** Name of the manifest in a backup directory. */
export const MANIFEST_FILE = 'manifest.json';

/** One file of a backup, by its path relative to the backup (and data) directory. */
export interface ManifestFile {
  readonly path: string;
  readonly bytes: number;
  /** Lower-case hex. */
  readonly sha256: string;
}

/** What manifest.json holds. */
export interface Manifest {
  readonly format: 'cds-backup';
  readonly version: 1;
  /** When the backup started and finished (ISO 8601). */
  readonly startedAt: string;
  readonly finishedAt: string;
  /** How the backup was taken: through the running service, or of a stopped one's data directory. */
  readonly mode: 'online' | 'offline';
  /** The epoch of the log that was copied (a restore gives the copy a new one). */
  readonly epoch: string;
  /** Per partition, the first and next offsets the copied log holds: everything in between, no hole. */
  readonly extents: readonly { readonly partition: number; readonly first: number; readonly next: number }[];
  /** When the snapshot of the log that gave `extents` was taken (the last pass's). */
  readonly extentTakenAt: string;
  /** Copy passes over the log (later passes copy what was appended during the earlier ones). */
  readonly logPasses: number;
  /**
   * The source log's next offset (partition 0) when the manifest was written: the records between
   * `extents[0].next` and it were acknowledged during the backup's last steps and are not in it
   * (the recovery point, measured; online backups under load).
   */
  readonly sourceNextAtFinish: number;
  readonly files: readonly ManifestFile[];
  /** Sum of the files' bytes. */
  readonly bytes: number;
}

function corrupt(dir: string, why: string): CdsError {
  return new CdsError('BACKUP_CORRUPT', `${join(dir, MANIFEST_FILE)}: ${why}`, {
    details: { backup: dir, file: MANIFEST_FILE },
  });
}

/**
 * Reads and checks the shape of a backup's manifest. BACKUP_INCOMPLETE when there is none (the
 * backup did not finish), BACKUP_CORRUPT when it is not a cds backup manifest.
 */
export async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    throw new CdsError(
      'BACKUP_INCOMPLETE',
      `${dir} has no ${MANIFEST_FILE}: the backup did not finish (the manifest is written last)`,
      { details: { backup: dir } },
    );
  }
  let m: Partial<Manifest>;
  try {
    m = JSON.parse(text) as Partial<Manifest>;
  } catch (e) {
    throw corrupt(dir, `not JSON (${(e as Error).message})`);
  }
  if (m.format !== 'cds-backup' || m.version !== 1)
    throw corrupt(dir, 'not a cds backup manifest (version 1)');
  if (typeof m.epoch !== 'string' || !Array.isArray(m.extents) || !Array.isArray(m.files))
    throw corrupt(dir, 'epoch, extents or files missing');
  for (const f of m.files) {
    if (
      typeof f?.path !== 'string' ||
      f.path.startsWith('/') ||
      f.path.split('/').includes('..') ||
      !Number.isSafeInteger(f.bytes) ||
      !/^[0-9a-f]{64}$/.test(String(f.sha256))
    )
      throw corrupt(dir, `a bad file entry ${JSON.stringify(f).slice(0, 200)}`);
  }
  return m as Manifest;
}
