/**
 * The ledger's embedded store: its own LMDB environment under `<dataDir>/ledger/` (ADR 0011).
 * Key [subscription, partition, lo, t, seq] -> CommitRecord without lo (msgpack).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { CdsError } from '../errors/index.ts';
import type { CommitRecord, CommitRecordAt, LedgerStore } from './port.ts';

type Key = [string, number, number, number, number];
type Stored = Omit<CommitRecord, 'lo'>;

/** LedgerStore on LMDB. */
export class LmdbLedgerStore implements LedgerStore {
  #seq = 0;
  #closing: Promise<void> | undefined;

  private constructor(
    private readonly env: RootDatabase,
    private readonly db: Database<Stored, Key>,
  ) {}

  /** Opens (creating if needed) the store under `<dataDir>/ledger/`. */
  static open(dataDir: string): LmdbLedgerStore {
    const path = join(dataDir, 'ledger');
    try {
      mkdirSync(path, { recursive: true });
      const env = open({ path, maxDbs: 2, mapSize: 1 << 30 });
      return new LmdbLedgerStore(env, env.openDB({ name: 'commits' }));
    } catch (cause) {
      throw new CdsError('STORAGE_UNAVAILABLE', `cannot open the ledger store in ${path}`, { cause });
    }
  }

  async append(records: readonly CommitRecordAt[]): Promise<void> {
    if (records.length === 0) return;
    await this.db.transaction(() => {
      for (const { subscription, partition, record } of records) {
        const { lo, ...rest } = record;
        void this.db.put([subscription, partition, lo, record.t, ++this.#seq], rest);
      }
    });
  }

  async find(
    subscription: string,
    partition: number,
    offset: number,
    maxScan: number,
  ): Promise<CommitRecord[]> {
    const out: CommitRecord[] = [];
    const range = this.db.getRange({
      start: [subscription, partition, offset, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
      end: [subscription, partition, -1],
      reverse: true,
      limit: maxScan,
    });
    for (const { key, value } of range) {
      if (value.hi > offset) out.push({ lo: key[2], ...value });
    }
    return out;
  }

  async prune(before: number): Promise<number> {
    let n = 0;
    await this.db.transaction(() => {
      for (const { key, value } of this.db.getRange({})) {
        if (value.t < before) {
          void this.db.remove(key);
          n++;
        }
      }
    });
    return n;
  }

  /** Copies the environment (ledger records) from one read snapshot to `<dir>/data.mdb`; `dir` exists (cds backup, ADR 0014). */
  backup(dir: string): Promise<void> {
    return this.env.backup(dir, false);
  }

  close(): Promise<void> {
    this.#closing ??= this.env.close();
    return this.#closing;
  }
}
