/**
 * The embedded StateStore (DESIGN 2, 6): one LMDB environment under `<dataDir>/state/`. Small stores
 * (principals, audit, meta) write through lmdb-js asynchronous transactions on the main thread; the
 * decision index writes through its own worker (see decision-index.ts). Every promise that writes
 * resolves after LMDB committed with its default sync, i.e. durably.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chainNext, type AuditEvent, type AuditRecord } from '../../../domain/audit.ts';
import { CdsError } from '../../../errors/index.ts';
import type { AuditStore, MetaStore, Principal, PrincipalStore, StateStore } from '../../../state/port.ts';
import { LmdbDecisionIndex } from './decision-index.ts';
import { IndexWriterClient } from './index-writer-client.ts';
import { runPath } from './id-index.ts';
import { openDbs, type StateDbs } from './layout.ts';
import { ROW, rowFiles } from './rows.ts';

/** StateStore on LMDB in the data directory. */
export class LmdbStateStore implements StateStore {
  readonly principals: PrincipalStore;
  readonly audit: AuditStore;
  readonly decisions: LmdbDecisionIndex;
  readonly meta: MetaStore;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly dbs: StateDbs,
    private readonly writer: IndexWriterClient,
    decisions: LmdbDecisionIndex,
    private readonly path: string,
  ) {
    this.principals = new LmdbPrincipals(dbs);
    this.audit = new LmdbAudit(dbs);
    this.decisions = decisions;
    this.meta = new LmdbMeta(dbs);
  }

  /**
   * Opens (creating if needed) the store under `<dataDir>/state/` and starts its index writer.
   * `idFlushRows` (tests) overrides how many rows the decisionId index keeps in memory before a run.
   */
  static async open(dataDir: string, opts: { idFlushRows?: number } = {}): Promise<LmdbStateStore> {
    const path = join(dataDir, 'state');
    let dbs: StateDbs;
    try {
      mkdirSync(path, { recursive: true });
      dbs = openDbs(path);
    } catch (cause) {
      throw new CdsError('STORAGE_UNAVAILABLE', `cannot open the state store in ${path}`, { cause });
    }
    try {
      // Reads on this thread must see a batch as soon as the writer reports its commit. The writer
      // starts first: it truncates the row files to the last commit before this thread loads its caches.
      const ref: { index?: LmdbDecisionIndex } = {};
      const writer = await IndexWriterClient.start(
        path,
        (info, columns) => {
          dbs.env.resetReadTxn();
          ref.index?.applyCommit(info, columns);
        },
        opts.idFlushRows,
      );
      dbs.env.resetReadTxn();
      try {
        ref.index = new LmdbDecisionIndex(dbs, writer, path);
      } catch (e) {
        await writer.close();
        throw e;
      }
      return new LmdbStateStore(dbs, writer, ref.index, path);
    } catch (e) {
      await dbs.env.close();
      throw e;
    }
  }

  /**
   * Copies the environment from one read snapshot to `<dir>/data.mdb` (`dir` exists; cds backup,
   * ADR 0014) and returns the decision-index files to copy with it, each with the length that
   * snapshot committed (runs whole). Copy them promptly: a run merged away is deleted 30 s later.
   * The copy's checkpoint then matches its rows; the index catches up from the log at start.
   */
  async backup(dir: string): Promise<{ readonly file: string; readonly bytes: number | undefined }[]> {
    await this.dbs.env.backup(dir, false);
    const copy = openDbs(dir);
    try {
      const stats = copy.decisionStats;
      const runs = (stats.get(['runs']) as unknown as number[] | undefined) ?? [];
      const files = rowFiles(this.path);
      return [
        { file: files.rows, bytes: (stats.get(['rows']) ?? 0) * ROW },
        { file: files.ids, bytes: stats.get(['idsBytes']) ?? 0 },
        ...runs.map((seq) => ({ file: runPath(this.path, seq), bytes: undefined })),
      ];
    } finally {
      await copy.env.close();
      rmSync(join(dir, 'lock.mdb'), { force: true });
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.writer.close();
      this.decisions.close();
      await this.dbs.env.close();
    })();
    return this.closing;
  }
}

class LmdbPrincipals implements PrincipalStore {
  constructor(private readonly dbs: StateDbs) {}

  async create(p: Principal): Promise<void> {
    const { env, principals, principalKeys } = this.dbs;
    const taken = await env.transaction(() => {
      if (principals.get(p.id) !== undefined) return `id ${p.id}`;
      if (principalKeys.get(p.keyHash) !== undefined) return 'key hash';
      principals.putSync(p.id, p);
      principalKeys.putSync(p.keyHash, p.id);
      return undefined;
    });
    if (taken !== undefined)
      throw new CdsError('ALREADY_EXISTS', `a principal with this ${taken} already exists`);
  }

  async findByKeyHash(keyHash: string): Promise<Principal | undefined> {
    const id = this.dbs.principalKeys.get(keyHash);
    return id === undefined ? undefined : this.get(id);
  }

  async get(id: string): Promise<Principal | undefined> {
    return this.dbs.principals.get(id) as Principal | undefined;
  }

  async list(): Promise<Principal[]> {
    const all = [...this.dbs.principals.getRange().map(({ value }) => value as Principal)];
    return all.sort((a, b) =>
      a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
  }

  async revoke(id: string, at: string): Promise<Principal | undefined> {
    const { env, principals } = this.dbs;
    return env.transaction(() => {
      const p = principals.get(id) as Principal | undefined;
      if (p === undefined || p.revokedAt !== undefined) return p;
      const revoked: Principal = { ...p, revokedAt: at };
      principals.putSync(id, revoked);
      return revoked;
    });
  }
}

class LmdbAudit implements AuditStore {
  constructor(private readonly dbs: StateDbs) {}

  async append(events: readonly AuditEvent[]): Promise<AuditRecord[]> {
    if (events.length === 0) return [];
    const { env, audit } = this.dbs;
    // The chain is computed inside the write transaction: LMDB's single writer serializes appends
    // from every caller (and process), so the chain cannot fork.
    return env.transaction(() => {
      let prev = this.lastIn();
      const out: AuditRecord[] = [];
      const now = new Date();
      for (const ev of events) {
        const r = chainNext(prev, ev, now);
        audit.putSync(r.seq, r);
        out.push(r);
        prev = r;
      }
      return out;
    });
  }

  async list(afterSeq: number, limit: number): Promise<AuditRecord[]> {
    if (limit <= 0) return [];
    return [
      ...this.dbs.audit.getRange({ start: afterSeq + 1, limit }).map(({ value }) => value as AuditRecord),
    ];
  }

  async last(): Promise<AuditRecord | undefined> {
    return this.lastIn();
  }

  private lastIn(): AuditRecord | undefined {
    for (const { value } of this.dbs.audit.getRange({ reverse: true, limit: 1 })) return value as AuditRecord;
    return undefined;
  }
}

class LmdbMeta implements MetaStore {
  constructor(private readonly dbs: StateDbs) {}

  async get(key: string): Promise<string | undefined> {
    return this.dbs.meta.get(key);
  }

  async set(key: string, value: string): Promise<void> {
    await this.dbs.meta.put(key, value);
  }
}
