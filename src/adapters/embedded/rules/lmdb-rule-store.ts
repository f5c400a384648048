/**
 * The embedded RuleStore (ADR 0013): its own LMDB environment under `<dataDir>/rules/` (a second
 * module must not open another module's environment). Databases: `versions` version -> RuleSetRecord;
 * `meta` 'active' -> ActivePointer. Every write resolves after LMDB committed it durably.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { CdsError } from '../../../errors/index.ts';
import {
  throwActivateOutcome,
  throwCreateOutcome,
  type ActivePointer,
  type RuleSetRecord,
  type RuleStore,
} from '../../../state/rules-port.ts';

const ACTIVE = 'active';

/** RuleStore on LMDB. */
export class LmdbRuleStore implements RuleStore {
  #closing: Promise<void> | undefined;

  private constructor(
    private readonly env: RootDatabase,
    private readonly versions: Database<RuleSetRecord, number>,
    private readonly meta: Database<ActivePointer, string>,
  ) {}

  /** Opens (creating if needed) the store under `<dataDir>/rules/`. */
  static open(dataDir: string): LmdbRuleStore {
    const path = join(dataDir, 'rules');
    try {
      mkdirSync(path, { recursive: true });
      const env = open({ path, maxDbs: 4, mapSize: 1 << 30 });
      return new LmdbRuleStore(env, env.openDB({ name: 'versions' }), env.openDB({ name: 'meta' }));
    } catch (cause) {
      throw new CdsError('STORAGE_UNAVAILABLE', `cannot open the rule store in ${path}`, { cause });
    }
  }

  #latest(): number {
    for (const k of this.versions.getKeys({ reverse: true, limit: 1 })) return k;
    return 0;
  }

  async latest(): Promise<number> {
    return this.#latest();
  }

  async get(version: number): Promise<RuleSetRecord | undefined> {
    return this.versions.get(version);
  }

  async list(opts: { before?: number; limit: number }): Promise<RuleSetRecord[]> {
    const range = this.versions.getRange({
      reverse: true,
      limit: opts.limit,
      ...(opts.before === undefined ? {} : { start: opts.before - 1 }),
    });
    return [...range].map((e) => e.value);
  }

  async active(): Promise<ActivePointer | undefined> {
    return this.meta.get(ACTIVE);
  }

  async create(record: RuleSetRecord, activate?: ActivePointer): Promise<void> {
    const outcome = await this.env.transaction(() => {
      const latest = this.#latest();
      if (record.version !== latest + 1) return latest;
      this.versions.putSync(record.version, record);
      if (activate !== undefined) this.meta.putSync(ACTIVE, activate);
      return 'ok';
    });
    throwCreateOutcome(record.version, outcome);
  }

  async activate(pointer: ActivePointer, expectedActive?: number): Promise<void> {
    const outcome = await this.env.transaction(() => {
      if (pointer.version !== 0 && this.versions.get(pointer.version) === undefined) return 'absent';
      const cur = this.meta.get(ACTIVE)?.version ?? 0;
      if (expectedActive !== undefined && cur !== expectedActive) return cur;
      this.meta.putSync(ACTIVE, pointer);
      return 'ok';
    });
    throwActivateOutcome(pointer.version, expectedActive, outcome);
  }

  /** Copies the environment (rule-set versions and the active pointer) from one read snapshot to `<dir>/data.mdb`; `dir` exists (cds backup, ADR 0014). */
  backup(dir: string): Promise<void> {
    return this.env.backup(dir, false);
  }

  close(): Promise<void> {
    this.#closing ??= this.env.close();
    return this.#closing;
  }
}
