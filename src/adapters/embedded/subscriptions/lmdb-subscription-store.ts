/**
 * The embedded SubscriptionStore (ADR 0009): its own LMDB environment under
 * `<dataDir>/subscriptions/` (a second module must not open the `state/` environment). Sub-databases:
 * `subs` name -> SubscriptionRecord; `cursors` [name, partition] -> CursorSnapshot; `dead`
 * [name, partition, offset] -> DeadLetter. Every write resolves after LMDB committed it durably.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { CdsError } from '../../../errors/index.ts';
import {
  throwPutOutcome,
  type CursorSnapshot,
  type DeadLetter,
  type SubscriptionRecord,
  type SubscriptionStore,
} from '../../../state/subscriptions-port.ts';

type CursorKey = [string, number];
type DeadKey = [string, number, number];

/** SubscriptionStore on LMDB. */
export class LmdbSubscriptionStore implements SubscriptionStore {
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly env: RootDatabase,
    private readonly subs: Database<SubscriptionRecord, string>,
    private readonly cursors: Database<CursorSnapshot, CursorKey>,
    private readonly dead: Database<DeadLetter, DeadKey>,
  ) {}

  /** Opens (creating if needed) the store under `<dataDir>/subscriptions/`. */
  static open(dataDir: string): LmdbSubscriptionStore {
    const path = join(dataDir, 'subscriptions');
    try {
      mkdirSync(path, { recursive: true });
      const env = open({ path, maxDbs: 8, mapSize: 1 << 30 });
      return new LmdbSubscriptionStore(
        env,
        env.openDB({ name: 'subs' }),
        env.openDB({ name: 'cursors' }),
        env.openDB({ name: 'dead' }),
      );
    } catch (cause) {
      throw new CdsError('STORAGE_UNAVAILABLE', `cannot open the subscription store in ${path}`, { cause });
    }
  }

  async list(): Promise<SubscriptionRecord[]> {
    return [...this.subs.getRange({})].map((e) => e.value);
  }

  async get(name: string): Promise<SubscriptionRecord | undefined> {
    return this.subs.get(name);
  }

  async put(
    record: SubscriptionRecord,
    expectedVersion: number,
    cursors?: readonly CursorSnapshot[],
  ): Promise<void> {
    const outcome = await this.env.transaction(() => {
      const cur = this.subs.get(record.name);
      if (expectedVersion === 0 && cur !== undefined) return 'exists';
      if (expectedVersion !== 0 && cur === undefined) return 'absent';
      if (expectedVersion !== 0 && cur !== undefined && cur.version !== expectedVersion) return 'conflict';
      this.subs.putSync(record.name, record);
      if (cursors !== undefined) this.replaceCursors(record.name, cursors);
      return 'ok';
    });
    throwPutOutcome(record.name, expectedVersion, outcome);
  }

  async delete(name: string): Promise<boolean> {
    return this.env.transaction(() => {
      if (this.subs.get(name) === undefined) return false;
      this.subs.removeSync(name);
      this.replaceCursors(name, []);
      for (const k of this.dead.getKeys({ start: [name, -1, -1], end: [name, Infinity, Infinity] }))
        this.dead.removeSync(k);
      return true;
    });
  }

  private replaceCursors(name: string, cursors: readonly CursorSnapshot[]): void {
    for (const k of this.cursors.getKeys({ start: [name, -1], end: [name, Infinity] }))
      this.cursors.removeSync(k);
    for (const c of cursors) this.cursors.putSync([name, c.partition], c);
  }

  /** One process holds this store (the data directory's lock), so a fencing token is never stale here. */
  async saveCursors(entries: ReadonlyMap<string, readonly CursorSnapshot[]>): Promise<string[]> {
    if (entries.size === 0) return [];
    await this.env.transaction(() => {
      for (const [name, cursors] of entries) {
        if (this.subs.get(name) === undefined) continue;
        for (const c of cursors) this.cursors.putSync([name, c.partition], c);
      }
    });
    return [];
  }

  async loadCursors(name: string): Promise<CursorSnapshot[]> {
    return [...this.cursors.getRange({ start: [name, -1], end: [name, Infinity] })].map((e) => e.value);
  }

  /** No leases here (one process holds the data directory): every fence is current. */
  async addDeadLetters(name: string, letters: readonly DeadLetter[]): Promise<boolean> {
    if (letters.length === 0) return true;
    await this.env.transaction(() => {
      if (this.subs.get(name) === undefined) return;
      for (const l of letters) this.dead.putSync([name, l.partition, l.offset], l);
    });
    return true;
  }

  async listDeadLetters(
    name: string,
    opts: { after?: { partition: number; offset: number }; limit: number },
  ): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    const start: DeadKey = opts.after ? [name, opts.after.partition, opts.after.offset] : [name, -1, -1];
    for (const { key, value } of this.dead.getRange({ start, end: [name, Infinity, Infinity] })) {
      if (opts.after && key[1] === opts.after.partition && key[2] === opts.after.offset) continue;
      out.push(value);
      if (out.length >= opts.limit) break;
    }
    return out;
  }

  async removeDeadLetters(
    name: string,
    at: readonly { partition: number; offset: number }[],
  ): Promise<number> {
    if (at.length === 0) return 0;
    return this.env.transaction(() => {
      let n = 0;
      for (const p of at) {
        const k: DeadKey = [name, p.partition, p.offset];
        if (this.dead.get(k) !== undefined) {
          this.dead.removeSync(k);
          n++;
        }
      }
      return n;
    });
  }

  async purgeDeadLetters(name: string): Promise<number> {
    return this.env.transaction(() => {
      let n = 0;
      for (const k of this.dead.getKeys({ start: [name, -1, -1], end: [name, Infinity, Infinity] })) {
        this.dead.removeSync(k);
        n++;
      }
      return n;
    });
  }

  /** Copies the environment (subscriptions, cursors and dead letters) from one read snapshot to `<dir>/data.mdb`; `dir` exists (cds backup, ADR 0014). */
  backup(dir: string): Promise<void> {
    return this.env.backup(dir, false);
  }

  close(): Promise<void> {
    this.closing ??= this.env.close();
    return this.closing;
  }
}
