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

/** Records read per step of a whole-store walk (`prune`, `nthNewestTime`); at most as many removed per write. */
const SCAN = 10_000;

function sameKey(a: Key, b: Key): boolean {
  return a.every((x, i) => x === b[i]);
}
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
    await this.#scan(async (chunk) => {
      const gone = chunk.filter((e) => e.value.t < before);
      if (gone.length === 0) return;
      await this.db.transaction(() => {
        for (const { key } of gone) void this.db.remove(key);
      });
      n += gone.length;
    });
    return n;
  }

  async nthNewestTime(n: number): Promise<number | undefined> {
    if (n < 1) return undefined;
    const times: number[] = [];
    await this.#scan((chunk) => {
      for (const { value } of chunk) times.push(value.t);
    });
    if (times.length < n) return undefined;
    return Float64Array.from(times).sort()[times.length - n];
  }

  /**
   * Hands every record to `visit` in key order, SCAN at a time, each chunk read from one snapshot
   * and the event loop free between chunks (a whole-store read would hold it for a second per
   * 200,000 records). A chunk resumes after the last key of the one before, even if it was removed.
   */
  async #scan(visit: (chunk: { key: Key; value: Stored }[]) => Promise<void> | void): Promise<void> {
    let after: Key | undefined;
    for (;;) {
      const chunk: { key: Key; value: Stored }[] = [];
      for (const { key, value } of this.db.getRange(after === undefined ? {} : { start: after })) {
        if (after !== undefined && chunk.length === 0 && sameKey(key, after)) continue;
        chunk.push({ key, value });
        if (chunk.length === SCAN) break;
      }
      await visit(chunk);
      const last = chunk[chunk.length - 1];
      if (last === undefined || chunk.length < SCAN) return;
      after = last.key;
      await new Promise((r) => setImmediate(r));
    }
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
