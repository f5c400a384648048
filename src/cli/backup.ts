/**
 * `cds backup` and `cds restore` (ADR 0014).
 *
 *   cds backup --to DIR [--url URL] [--key KEY]     the running service writes the backup (admin API)
 *   cds backup --to DIR --offline [--data-dir D]    a stopped service's data directory
 *   (either with --max-bytes-per-second N: pace the copy, sparing the disk of a loaded service)
 *   cds restore --from DIR --data-dir NEW           a new data directory, with a new log epoch
 *
 * Like verify-audit, the offline forms open the embedded stores themselves (the list of them is
 * src/embedded-stores.ts, which app.ts uses too), for commands that run while the service does not.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SegmentLog } from '../adapters/embedded/log/index.ts';
import { restoreBackup, writeBackup, type BackupView, type Manifest } from '../backup/index.ts';
import { CdsError } from '../errors/index.ts';
import { closeEmbeddedStores, embeddedBackupParts, openEmbeddedStores } from '../embedded-stores.ts';
import { call, clientOptions } from './client.ts';
import type { CliIo } from './io.ts';

const USAGE_BACKUP =
  'cds backup --to DIR [--url URL --key KEY | --offline --data-dir DATA_DIR] [--max-bytes-per-second N]';
const USAGE_RESTORE = 'cds restore --from DIR --data-dir NEW_DATA_DIR';

/** `cds backup`: resolves with the exit code. */
export async function backupCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      to: { type: 'string' },
      url: { type: 'string' },
      key: { type: 'string' },
      'data-dir': { type: 'string' },
      offline: { type: 'boolean' },
      'max-bytes-per-second': { type: 'string' },
    },
  });
  if (values.to === undefined || values.to === '') throw usage(USAGE_BACKUP);
  const pace = values['max-bytes-per-second'];
  if (pace !== undefined && !/^[1-9]\d{4,14}$/.test(pace))
    throw new CdsError('VALIDATION_FAILED', '--max-bytes-per-second must be an integer of at least 65536');
  const rate = pace === undefined ? undefined : Number(pace);
  const to = resolve(values.to);
  if (values.offline === true) {
    const dataDir = resolve(values['data-dir'] ?? io.env['CDS_DATA_DIR'] ?? './data');
    const m = await offlineBackup(dataDir, to, rate);
    io.stdout(JSON.stringify(summary(to, m)));
    return 0;
  }
  const opts = clientOptions(values, io.env);
  let view = (await call(opts, 'POST', '/v1/admin/backups', {
    path: to,
    ...(rate === undefined ? {} : { maxBytesPerSecond: rate }),
  })) as BackupView;
  const tty = process.stderr.isTTY === true;
  while (view.state === 'running') {
    await new Promise((r) => setTimeout(r, 200));
    view = (await call(opts, 'GET', `/v1/admin/backups/${encodeURIComponent(view.id)}`)) as BackupView;
    if (tty)
      process.stderr.write(
        `\rcds backup: ${view.progress.phase}, ${view.progress.files} files, ${(view.progress.bytes / 1048576).toFixed(1)} MiB   `,
      );
  }
  if (tty) process.stderr.write('\n');
  if (view.state === 'failed') {
    io.stderr(
      `cds backup: ${view.error?.code}: ${view.error?.message} (${to} is incomplete: restore refuses it)`,
    );
    return 1;
  }
  io.stdout(JSON.stringify({ id: view.id, ...summary(to, view.manifest as unknown as Manifest) }));
  return 0;
}

function summary(path: string, m: Manifest): Record<string, unknown> {
  return {
    path,
    epoch: m.epoch,
    extents: m.extents,
    files: typeof m.files === 'number' ? m.files : m.files.length,
    bytes: m.bytes,
    logPasses: m.logPasses,
    extentTakenAt: m.extentTakenAt,
    // Acknowledged while the backup finished, not in it (the recovery point, in records).
    notInBackup: m.sourceNextAtFinish - (m.extents[0]?.next ?? 0),
    startedAt: m.startedAt,
    finishedAt: m.finishedAt,
    ms: Date.parse(m.finishedAt) - Date.parse(m.startedAt),
  };
}

/** A backup of a data directory whose service is stopped (the log's lock says so: DATA_DIR_LOCKED otherwise). */
export async function offlineBackup(
  dataDir: string,
  to: string,
  maxBytesPerSecond?: number,
): Promise<Manifest> {
  // Opening the stores would create them: a directory that holds no log is refused instead.
  if (!existsSync(join(dataDir, 'log', 'meta.json')))
    throw new CdsError('NOT_FOUND', `${dataDir} is not a cds data directory (no log/meta.json)`, {
      details: { errors: [{ path: 'data-dir', code: 'not_found', message: 'an existing data directory' }] },
    });
  const log = await SegmentLog.open(join(dataDir, 'log'));
  try {
    const stores = await openEmbeddedStores(dataDir);
    try {
      return await writeBackup(embeddedBackupParts(dataDir, log, stores), to, {
        mode: 'offline',
        ...(maxBytesPerSecond === undefined ? {} : { maxBytesPerSecond }),
      });
    } finally {
      await closeEmbeddedStores(stores);
    }
  } finally {
    await log.close().catch(() => undefined);
  }
}

/** `cds restore`: resolves with the exit code. */
export async function restoreCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: { from: { type: 'string' }, 'data-dir': { type: 'string' } },
  });
  if (!values.from || !values['data-dir']) throw usage(USAGE_RESTORE);
  const result = await restoreBackup(resolve(values.from), resolve(values['data-dir']), reEpoch);
  io.stdout(JSON.stringify(result));
  return 0;
}

/** Gives a restored log its new epoch, checks every frame, reports the epoch and extents. */
async function reEpoch(
  dir: string,
): Promise<{ epoch: string; extents: { partition: number; first: number; next: number }[] }> {
  const log = await SegmentLog.open(dir, { newEpoch: true });
  try {
    await log.verify();
    return { epoch: log.epoch, extents: log.extents() };
  } finally {
    await log.close();
  }
}

function usage(text: string): CdsError {
  return new CdsError('VALIDATION_FAILED', `usage: ${text}`);
}
