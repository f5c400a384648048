/**
 * The main thread's handle on the index-writer worker: posts batches, resolves each `write()` when the
 * worker reports its transaction committed, and restarts the worker if it dies (a batch whose answer
 * was lost is rejected; retrying it is safe because re-indexing an entry is a no-op).
 */
import { Worker } from 'node:worker_threads';
import { CdsError } from '../../../errors/index.ts';
import type { CommitInfo } from './index-store.ts';
import type { EntryColumns } from './layout.ts';
import type { WriterReply, WriterRequest } from './writer-protocol.ts';

// Under tsx (how cds runs) the worker is the .ts source, and a worker thread does not inherit the
// main thread's module hooks (Node 20): a small bootstrap registers tsx in the worker first. A compiled
// build would ship index-writer.js beside this file and start it directly.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(FROM_SOURCE ? './index-writer.ts' : './index-writer.js', import.meta.url);
const BOOTSTRAP = FROM_SOURCE
  ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`
  : '';

interface Pending {
  readonly columns: EntryColumns;
  resolve(): void;
  reject(e: Error): void;
}

/** Owns the writer worker of one LMDB environment. */
export class IndexWriterClient {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly path: string,
    private readonly onCommitted: (info: CommitInfo, columns: (EntryColumns | undefined)[]) => void,
    private readonly flushRows: number | undefined,
  ) {}

  /** Starts the worker on the environment at `path`; resolves once it has opened it. */
  static async start(
    path: string,
    onCommitted: (info: CommitInfo, columns: (EntryColumns | undefined)[]) => void,
    flushRows?: number,
  ): Promise<IndexWriterClient> {
    const c = new IndexWriterClient(path, onCommitted, flushRows);
    await c.spawn();
    return c;
  }

  /** Writes a batch and checkpoint in one durable transaction. */
  write(columns: EntryColumns, through: Readonly<Record<number, number>>): Promise<void> {
    if (this.closing !== undefined)
      return Promise.reject(new CdsError('SHUTTING_DOWN', 'the state store is closed'));
    const worker = this.worker ?? this.respawn();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { columns, resolve, reject });
      worker.postMessage({ kind: 'add', id, columns, through } satisfies WriterRequest);
    });
  }

  /** Waits for pending writes, then stops the worker (which closes its handle on the environment). Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.drainAndStop();
    return this.closing;
  }

  private async drainAndStop(): Promise<void> {
    await Promise.allSettled([...this.pending.values()].map((p) => new Promise<void>((r) => chain(p, r))));
    const worker = this.worker;
    if (worker === undefined) return;
    await new Promise<void>((resolve) => {
      worker.once('exit', () => resolve());
      worker.postMessage({ kind: 'close' } satisfies WriterRequest);
    });
  }

  private spawn(): Promise<void> {
    const worker = FROM_SOURCE
      ? new Worker(BOOTSTRAP, { eval: true, workerData: { path: this.path, flushRows: this.flushRows } })
      : new Worker(WORKER_URL, { workerData: { path: this.path, flushRows: this.flushRows } });
    this.worker = worker;
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (m: WriterReply) => {
        if (m.kind === 'ready') resolve();
        else if (m.kind === 'committed')
          this.onCommitted(
            m.info,
            (m.info.group ?? []).map((id) => this.pending.get(id)?.columns),
          );
        else if (m.kind === 'done') {
          this.settle(m.id)?.resolve();
        } else if (m.kind === 'failed') {
          this.settle(m.id)?.reject(
            new CdsError('STORAGE_UNAVAILABLE', `decision index write failed: ${m.message}`),
          );
        }
      });
      const fail = (cause: unknown): void => {
        if (this.worker === worker) this.worker = undefined;
        const err = new CdsError('STORAGE_UNAVAILABLE', 'the decision index writer stopped', { cause });
        reject(err);
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          p.reject(err);
        }
      };
      worker.once('error', fail);
      worker.once('exit', (code) => fail(new Error(`exit code ${code}`)));
    });
  }

  private respawn(): Worker {
    void this.spawn().catch(() => undefined); // a failure rejects the pending writes
    return this.worker as Worker;
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }
}

/** Calls `done` once `p` settles, either way. */
function chain(p: Pending, done: () => void): void {
  const { resolve, reject } = p;
  p.resolve = () => {
    resolve();
    done();
  };
  p.reject = (e) => {
    reject(e);
    done();
  };
}
