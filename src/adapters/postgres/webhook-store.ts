/**
 * The cluster WebhookStore (port: src/state/webhooks-port.ts; table in
 * migrations/0007_webhooks_ledger.sql): endpoints shared by every instance. Every write is one
 * statement and resolves after COMMIT; a trigger notifies the change feed's channel (kind `webhook`),
 * so every instance's WebhookService starts, updates or stops the endpoint's dispatcher. The secret
 * is kept as the embedded store keeps it, in a column of its own (ADR 0006).
 */
import type pg from 'pg';
import type { WebhookRecord, WebhookStore } from '../../state/webhooks-port.ts';
import { openPool, type PoolOptions } from './connect.ts';
import { query } from './pool.ts';

interface Row {
  secret: string;
  record: Omit<WebhookRecord, 'secret'>;
}

const toRecord = (r: Row): WebhookRecord => ({ ...r.record, secret: r.secret });

/** WebhookStore on PostgreSQL. */
export class PostgresWebhookStore implements WebhookStore {
  #closing: Promise<void> | undefined;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and migrates like PostgresStateStore.open (same errors); this store owns its pool. */
  static async open(url: string, opts: PoolOptions = {}): Promise<PostgresWebhookStore> {
    return new PostgresWebhookStore(await openPool(url, { poolSize: 2, ...opts }));
  }

  async list(): Promise<WebhookRecord[]> {
    const rows = await query<Row>(
      this.pool,
      'listing webhook endpoints',
      'SELECT secret, record FROM cds_webhooks ORDER BY id',
    );
    return rows.map(toRecord);
  }

  async get(id: string): Promise<WebhookRecord | undefined> {
    const [r] = await query<Row>(
      this.pool,
      `reading webhook endpoint '${id}'`,
      'SELECT secret, record FROM cds_webhooks WHERE id = $1',
      [id],
    );
    return r === undefined ? undefined : toRecord(r);
  }

  async put(record: WebhookRecord): Promise<void> {
    const { secret, ...rest } = record;
    await query(
      this.pool,
      `storing webhook endpoint '${record.id}'`,
      `INSERT INTO cds_webhooks (id, subscription, secret, record) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE
         SET subscription = EXCLUDED.subscription, secret = EXCLUDED.secret, record = EXCLUDED.record`,
      [record.id, record.subscription, secret, JSON.stringify(rest)],
    );
  }

  async delete(id: string): Promise<boolean> {
    const rows = await query<{ id: string }>(
      this.pool,
      `deleting webhook endpoint '${id}'`,
      'DELETE FROM cds_webhooks WHERE id = $1 RETURNING id',
      [id],
    );
    return rows.length === 1;
  }

  close(): Promise<void> {
    this.#closing ??= this.pool.end().catch(() => {});
    return this.#closing;
  }
}
