/**
 * The embedded WebhookStore (ADR 0010): its own LMDB environment under `<dataDir>/webhooks/`, one
 * database `endpoints` id -> WebhookRecord. The file holds signing secrets: it is created mode 0700.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { CdsError } from '../../../errors/index.ts';
import type { WebhookRecord, WebhookStore } from '../../../state/webhooks-port.ts';

/** WebhookStore on LMDB. */
export class LmdbWebhookStore implements WebhookStore {
  #closing: Promise<void> | undefined;

  private constructor(
    private readonly env: RootDatabase,
    private readonly db: Database<WebhookRecord, string>,
  ) {}

  /** Opens (creating if needed) the store under `<dataDir>/webhooks/`. */
  static open(dataDir: string): LmdbWebhookStore {
    const path = join(dataDir, 'webhooks');
    try {
      mkdirSync(path, { recursive: true, mode: 0o700 });
      const env = open({ path, maxDbs: 2, mapSize: 64 << 20 });
      return new LmdbWebhookStore(env, env.openDB({ name: 'endpoints' }));
    } catch (cause) {
      throw new CdsError('STORAGE_UNAVAILABLE', `cannot open the webhook store in ${path}`, { cause });
    }
  }

  async list(): Promise<WebhookRecord[]> {
    return [...this.db.getRange({})].map((e) => e.value);
  }

  async get(id: string): Promise<WebhookRecord | undefined> {
    return this.db.get(id);
  }

  async put(record: WebhookRecord): Promise<void> {
    await this.db.put(record.id, record);
  }

  async delete(id: string): Promise<boolean> {
    // remove() resolves true whether or not the key existed; removeSync in a transaction tells.
    return this.db.transaction(() => this.db.removeSync(id));
  }

  /** Copies the environment (webhook endpoints and their secrets) from one read snapshot to `<dir>/data.mdb`; `dir` exists (cds backup, ADR 0014). */
  backup(dir: string): Promise<void> {
    return this.env.backup(dir, false);
  }

  close(): Promise<void> {
    this.#closing ??= this.env.close();
    return this.#closing;
  }
}
