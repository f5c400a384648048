/**
 * Backups of the running service (ADR 0014): one at a time, run in the background, with a status
 * that the admin API shows (`POST /v1/admin/backups`, `GET /v1/admin/backups/{id}`) and `cds backup`
 * polls. Starting and finishing are audited; the start record is written before the copy, so the
 * backup's own audit trail says that it was taken.
 */
import { randomBytes } from 'node:crypto';
import { isAbsolute, relative, resolve } from 'node:path';
import { CdsError, isCdsError } from '../errors/index.ts';
import type { AuditTrail } from '../security/index.ts';
import { writeBackup, type BackupOptions, type BackupParts, type BackupProgress } from './backup.ts';
import { checkEmptyTarget } from './files.ts';
import type { Manifest } from './manifest.ts';

/** What the API shows of one backup. */
export interface BackupView {
  readonly id: string;
  readonly path: string;
  readonly state: 'running' | 'done' | 'failed';
  readonly startedAt: string;
  readonly progress: BackupProgress;
  /** When done: the manifest's summary (extents, epoch, files, bytes, times). */
  readonly manifest?: Omit<Manifest, 'files'> & { readonly files: number };
  /** When failed: the error. */
  readonly error?: { readonly code: string; readonly message: string };
}

interface Job {
  view: BackupView;
  done: Promise<void>;
}

/** Backups kept in the status list. */
const KEEP = 20;

/** Runs backups of this instance's data directory. */
export class BackupService {
  readonly #jobs = new Map<string, Job>();
  #running: Job | undefined;

  /** `parts` undefined: this run mode cannot be backed up by cds (state on PostgreSQL). */
  constructor(
    private readonly parts: BackupParts | undefined,
    private readonly audit: AuditTrail,
    private readonly opts: Pick<BackupOptions, 'onStep' | 'settleBytes' | 'maxPasses'> = {},
  ) {}

  /**
   * Validates the request and starts a backup into `body.path`; resolves once it is running.
   * VALIDATION_FAILED, TARGET_NOT_EMPTY, BACKUP_IN_PROGRESS, NOT_SUPPORTED: nothing written.
   */
  async start(body: unknown, actor: string): Promise<BackupView> {
    const parts = this.parts;
    if (parts === undefined)
      throw new CdsError(
        'NOT_SUPPORTED',
        'backup copies the embedded data directory; with state.engine=postgres back up PostgreSQL with its own tools',
      );
    const b = body as Record<string, unknown> | undefined;
    const unknown = Object.keys(b ?? {}).filter((k) => k !== 'path' && k !== 'maxBytesPerSecond');
    const path = b?.['path'];
    const rate = b?.['maxBytesPerSecond'];
    if (rate !== undefined && (typeof rate !== 'number' || !Number.isSafeInteger(rate) || rate < 65_536))
      throw new CdsError('VALIDATION_FAILED', 'maxBytesPerSecond: an integer of at least 65536', {
        details: {
          errors: [{ path: '/maxBytesPerSecond', code: 'range', message: 'an integer of at least 65536' }],
        },
      });
    if (
      typeof b !== 'object' ||
      b === null ||
      typeof path !== 'string' ||
      path.length === 0 ||
      unknown.length > 0
    )
      throw new CdsError(
        'VALIDATION_FAILED',
        'the body is {"path": "/absolute/backup/directory", "maxBytesPerSecond"?: N}',
        {
          details: {
            errors: [
              ...(typeof path === 'string' && path.length > 0
                ? []
                : [{ path: '/path', code: 'required', message: 'an absolute directory path' }]),
              ...unknown.map((k) => ({
                path: `/${k}`,
                code: 'unknown_field',
                message: 'not part of the request',
              })),
            ],
          },
        },
      );
    await checkEmptyTarget(path, '/path');
    const rel = relative(resolve(parts.dataDir), resolve(path));
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel)))
      throw new CdsError(
        'VALIDATION_FAILED',
        `/path: ${path} is inside the data directory ${parts.dataDir}`,
        {
          details: {
            errors: [{ path: '/path', code: 'inside_data_dir', message: 'outside the data directory' }],
          },
        },
      );
    if (this.#running !== undefined)
      throw new CdsError('BACKUP_IN_PROGRESS', `backup ${this.#running.view.id} is running`, {
        retryAfterSeconds: 5,
        details: { id: this.#running.view.id },
      });
    const id = `b-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const progress: BackupProgress = { phase: 'stores', files: 0, bytes: 0 };
    const job: Job = {
      view: { id, path, state: 'running', startedAt: new Date().toISOString(), progress },
      done: Promise.resolve(),
    };
    this.#running = job;
    this.#jobs.set(id, job);
    for (const old of this.#jobs.keys()) if (this.#jobs.size > KEEP) this.#jobs.delete(old);
    try {
      await this.audit.append({ actor, action: 'backup.start', target: path, details: { id } });
    } catch (e) {
      this.#running = undefined;
      this.#jobs.delete(id);
      throw e;
    }
    job.done = writeBackup(parts, path, {
      mode: 'online',
      progress,
      ...this.opts,
      ...(rate === undefined ? {} : { maxBytesPerSecond: rate as number }),
    }).then(
      async (m) => {
        const { files, ...rest } = m;
        job.view = { ...job.view, state: 'done', manifest: { ...rest, files: files.length } };
        this.#running = undefined;
        await this.audit
          .append({
            actor,
            action: 'backup.finish',
            target: path,
            details: { id, extents: m.extents, bytes: m.bytes },
          })
          .catch(() => undefined);
      },
      async (e: unknown) => {
        const err = isCdsError(e)
          ? e
          : new CdsError('STORAGE_UNAVAILABLE', `backup failed: ${(e as Error).message}`);
        job.view = { ...job.view, state: 'failed', error: { code: err.code, message: err.message } };
        this.#running = undefined;
        await this.audit
          .append({
            actor,
            action: 'backup.fail',
            target: path,
            details: { id, code: err.code, message: err.message },
          })
          .catch(() => undefined);
      },
    );
    return job.view;
  }

  /** One backup's status; NOT_FOUND when unknown (or forgotten: the last 20 are kept). */
  get(id: string): BackupView {
    const j = this.#jobs.get(id);
    if (j === undefined) throw new CdsError('NOT_FOUND', `no backup '${id}'`);
    return j.view;
  }

  /** The last backups, newest first. */
  list(): BackupView[] {
    return [...this.#jobs.values()].map((j) => j.view).reverse();
  }

  /** Resolves when the running backup (if any) has ended. */
  async idle(): Promise<void> {
    await this.#running?.done;
  }
}
