/**
 * The embedded RetentionPolicyStore (ADR 0017): its own LMDB environment under
 * `<dataDir>/retention/`, one database `policies` name -> RetentionPolicyRecord. Every write resolves
 * after LMDB committed it durably.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { CdsError } from '../../../errors/index.ts';
import {
  throwRetentionOutcome,
  type RetentionPolicyRecord,
  type RetentionPolicyStore,
  type RetentionPutOutcome,
} from '../../../state/retention-port.ts';

/** RetentionPolicyStore on LMDB. */
export class LmdbRetentionStore implements RetentionPolicyStore {
  #closing: Promise<void> | undefined;

  private constructor(
    private readonly env: RootDatabase,
    private readonly db: Database<RetentionPolicyRecord, string>,
  ) {}

  /** Opens (creating if needed) the store under `<dataDir>/retention/`. */
  static open(dataDir: string): LmdbRetentionStore {
    const path = join(dataDir, 'retention');
    try {
      mkdirSync(path, { recursive: true });
      const env = open({ path, maxDbs: 2, mapSize: 64 << 20 });
      return new LmdbRetentionStore(env, env.openDB({ name: 'policies' }));
    } catch (cause) {
      throw new CdsError('STORAGE_UNAVAILABLE', `cannot open the retention store in ${path}`, { cause });
    }
  }

  async list(): Promise<RetentionPolicyRecord[]> {
    return [...this.db.getRange({})].map((e) => e.value);
  }

  async get(name: string): Promise<RetentionPolicyRecord | undefined> {
    return this.db.get(name);
  }

  async put(record: RetentionPolicyRecord): Promise<void> {
    const outcome = await this.env.transaction((): RetentionPutOutcome => {
      const stored = this.db.get(record.name)?.version ?? 0;
      if (record.version === 1 && stored !== 0) return 'exists';
      if (stored !== record.version - 1) return { stored };
      this.db.putSync(record.name, record);
      return 'ok';
    });
    throwRetentionOutcome(record.name, record.version - 1, outcome);
  }

  async delete(name: string, expectedVersion?: number): Promise<boolean> {
    const outcome = await this.env.transaction((): RetentionPutOutcome | 'absent' => {
      const stored = this.db.get(name)?.version;
      if (stored === undefined) return expectedVersion === undefined ? 'absent' : { stored: 0 };
      if (expectedVersion !== undefined && stored !== expectedVersion) return { stored };
      this.db.removeSync(name);
      return 'ok';
    });
    if (outcome === 'absent') return false;
    throwRetentionOutcome(name, expectedVersion ?? 0, outcome);
    return true;
  }

  /** Copies the environment (the policies) from one read snapshot to `<dir>/data.mdb`; `dir` exists (cds backup). */
  backup(dir: string): Promise<void> {
    return this.env.backup(dir, false);
  }

  close(): Promise<void> {
    this.#closing ??= this.env.close();
    return this.#closing;
  }
}
