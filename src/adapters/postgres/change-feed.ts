/**
 * The change feed (DESIGN 6, the bullmq anchor): what other instances changed in the shared state,
 * heard through LISTEN/NOTIFY on a dedicated connection. Triggers (migrations/0002) NOTIFY in the
 * transaction of each change of a subscription or a principal (0004 of the active rule set, 0006 of a
 * retention policy, 0007 of a webhook endpoint), so
 * a notification arrives after the commit and never for a change that rolled back.
 *
 * No change is missed across a lost connection: on every (re)connect the feed first LISTENs, then
 * re-reads the current version of every subscription and reports each one that differs from what it
 * last knew (and, after a reconnect, that any principal, the active rule set, retention policy or
 * webhook endpoint may have changed: `principal '*'`, `rules '*'`, `retention '*'`, `webhook '*'`), so a change
 * committed while it was disconnected is reported by the re-read, and one committed after the LISTEN
 * by its notification. A consumer may hear of a change twice (or of its own changes): reacting must
 * be idempotent (re-read and apply).
 */
import pg from 'pg';
import { describeUrl, TYPES } from './connect.ts';
import { mapConnectError } from './errors.ts';
import { ignore } from './pool.ts';

/**
 * One change: a subscription (by name) or a principal (by id, or '*' for any) was created, changed or
 * removed, or the active rule set moved (`name`: the active version, or '*' when unknown), or a
 * retention policy changed (`name`: the policy, or '*' when unknown; ADR 0017), or a webhook endpoint
 * (`name`: its id, or '*' when unknown; ADR 0006).
 */
export interface StateChange {
  readonly kind: 'subscription' | 'principal' | 'rules' | 'retention' | 'webhook';
  readonly name: string;
}

/** What another instance changed, as an async iterable of changes (one iteration per feed). */
export interface ChangeFeed {
  /** The changes, in the order heard; ends when the feed is closed. */
  changes(): AsyncIterable<StateChange>;
  /** Whether the listening connection is up (false while reconnecting). */
  readonly connected: boolean;
  close(): Promise<void>;
}

/** Options of {@link PostgresChangeFeed.open}. */
export interface ChangeFeedOptions {
  /** First delay before a reconnect, doubled up to `maxRetryMs`. Default 100 ms. */
  readonly retryMs?: number;
  /** Longest delay between reconnects. Default 2,000 ms. */
  readonly maxRetryMs?: number;
  /** Told of each failed (re)connect (the feed keeps trying). */
  readonly onError?: (e: unknown) => void;
}

const CHANNEL = 'cds_changes';

/** ChangeFeed on LISTEN/NOTIFY. */
export class PostgresChangeFeed implements ChangeFeed {
  #client: pg.Client | undefined;
  #connected = false;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #delay: number;
  /** Subscription name -> version, as last read or heard. */
  readonly #known = new Map<string, number>();
  readonly #queue: StateChange[] = [];
  #wake: (() => void) | undefined;

  private constructor(
    private readonly url: string,
    private readonly opts: ChangeFeedOptions,
  ) {
    this.#delay = opts.retryMs ?? 100;
  }

  /**
   * Connects and LISTENs, and reads the current versions as the baseline; resolves once listening,
   * so that whatever the caller reads afterwards is either in that read or notified later. Rejects
   * like the first connection of a store (the schema must be migrated: open a store first).
   */
  static async open(url: string, opts: ChangeFeedOptions = {}): Promise<PostgresChangeFeed> {
    const where = describeUrl(url);
    const feed = new PostgresChangeFeed(url, opts);
    try {
      await feed.#connect(true);
    } catch (e) {
      throw mapConnectError(e, where);
    }
    return feed;
  }

  get connected(): boolean {
    return this.#connected;
  }

  async #connect(first: boolean): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, application_name: 'cds-feed', types: TYPES });
    client.on('error', ignore);
    try {
      await client.connect();
      client.on('notification', (m) => this.#onNotification(m.payload));
      await client.query(`LISTEN ${CHANNEL}`);
      // After LISTEN: anything committed from here on is notified; anything before is in this read.
      const { rows } = await client.query<{ name: string; version: number }>(
        'SELECT name, version FROM cds_subscriptions',
      );
      if (this.#closed) {
        await client.end().catch(() => {});
        return;
      }
      const now = new Map(rows.map((r) => [r.name, r.version]));
      if (!first) {
        for (const [name, v] of now) if (this.#known.get(name) !== v) this.#push('subscription', name);
        for (const name of this.#known.keys()) if (!now.has(name)) this.#push('subscription', name);
        this.#push('principal', '*');
        this.#push('rules', '*');
        this.#push('retention', '*');
        this.#push('webhook', '*');
      }
      this.#known.clear();
      for (const [k, v] of now) this.#known.set(k, v);
    } catch (e) {
      client.removeAllListeners('notification');
      await client.end().catch(() => {});
      throw e;
    }
    this.#client = client;
    this.#connected = true;
    this.#delay = this.opts.retryMs ?? 100;
    const lost = (): void => {
      if (this.#client !== client) return;
      this.#client = undefined;
      this.#connected = false;
      client.removeAllListeners();
      client.on('error', ignore);
      void client.end().catch(() => {});
      this.#scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', lost);
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect(false).catch((e: unknown) => {
        this.opts.onError?.(e);
        this.#delay = Math.min(this.#delay * 2, this.opts.maxRetryMs ?? 2_000);
        this.#scheduleReconnect();
      });
    }, this.#delay);
    this.#retryTimer.unref();
  }

  #onNotification(payload: string | undefined): void {
    if (payload === undefined) return;
    let m: { kind?: unknown; name?: unknown; version?: unknown };
    try {
      m = JSON.parse(payload) as typeof m;
    } catch {
      return;
    }
    if (typeof m.name !== 'string') return;
    if (m.kind === 'subscription') {
      if (typeof m.version === 'number') this.#known.set(m.name, m.version);
      else this.#known.delete(m.name);
      this.#push('subscription', m.name);
    } else if (m.kind === 'principal' || m.kind === 'rules' || m.kind === 'retention' || m.kind === 'webhook')
      this.#push(m.kind, m.name);
  }

  #push(kind: StateChange['kind'], name: string): void {
    this.#queue.push({ kind, name });
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async *changes(): AsyncIterable<StateChange> {
    while (!this.#closed) {
      const next = this.#queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      await new Promise<void>((r) => (this.#wake = r));
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
    const c = this.#client;
    this.#client = undefined;
    this.#connected = false;
    if (c !== undefined) {
      c.removeAllListeners();
      c.on('error', ignore);
      await c.end().catch(() => {});
    }
  }
}
