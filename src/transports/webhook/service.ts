/**
 * Webhook endpoints of subscriptions (DESIGN 7; ADR 0010): registration, listing with health,
 * deletion, re-enabling, and one Dispatcher per enabled endpoint. Registering, deleting and enabling
 * need `admin` on every topic pattern of the subscription (an endpoint sends data out of the service);
 * listing needs `subscribe`. Every change is audited (never the secret).
 */
import { randomBytes } from 'node:crypto';
import { CdsError } from '../../errors/index.ts';
import type { Logger } from '../../observability/logger.ts';
import type { AuditTrail, AuthContext } from '../../security/index.ts';
import type { WebhookRecord, WebhookStore } from '../../state/webhooks-port.ts';
import { patternCovers, type SubscriptionService } from '../../subscriptions/index.ts';
import { Dispatcher, type WebhookHealth } from './dispatcher.ts';
import { generateSecret } from './signing.ts';
import { parseWebhook } from './spec.ts';

type Caller = Pick<AuthContext, 'principalId' | 'grants'>;

/** What the API shows of an endpoint (the secret only in the answer to its creation). */
export type WebhookView = Omit<WebhookRecord, 'secret'> & { secret?: string; health: WebhookHealth | null };

/** The most endpoints one subscription may have. */
const MAX_PER_SUBSCRIPTION = 16;

/** Runs every webhook endpoint of this instance. */
export class WebhookService {
  readonly #dispatchers = new Map<string, Dispatcher>();
  readonly #ordering = new Map<string, string>();
  #closed = false;

  constructor(
    private readonly store: WebhookStore,
    private readonly subscriptions: SubscriptionService,
    private readonly audit: AuditTrail,
    private readonly logger: Logger,
  ) {}

  /** Starts every enabled endpoint; endpoints of subscriptions that no longer exist are removed. */
  async start(): Promise<void> {
    for (const r of await this.store.list()) {
      if (r.state === 'active') this.#run(r);
      else
        await this.subscriptions.get(r.subscription, this.#system(r.id)).catch(async (e: unknown) => {
          if ((e as { code?: string }).code === 'NOT_FOUND') await this.store.delete(r.id);
        });
    }
  }

  /**
   * Applies a change of an endpoint made here or on another instance (cluster mode: heard on the
   * change feed): re-reads it and starts, restarts (re-enabled), stops (disabled) or drops its
   * dispatcher; `'*'` re-reads every endpoint. Idempotent, since an instance also hears its own changes.
   */
  async reload(id: string): Promise<void> {
    if (this.#closed) return;
    const stored =
      id === '*' ? await this.store.list() : [await this.store.get(id)].filter((r) => r !== undefined);
    const byId = new Map(stored.map((r) => [r.id, r]));
    const ids = id === '*' ? new Set([...this.#dispatchers.keys(), ...byId.keys()]) : [id];
    for (const one of ids) {
      if (this.#closed) return;
      const r = byId.get(one);
      const d = this.#dispatchers.get(one);
      if (r === undefined || r.state === 'disabled') await this.#drop(one);
      else if (d === undefined) this.#run(r);
      else if (d.record.updatedAt !== r.updatedAt) {
        // Changed elsewhere while running here: take the new record; the failure streak starts over.
        d.resetHealth(r);
        d.start();
      }
    }
  }

  /** Stops every dispatcher (before the engine commits its last cursors); waits up to `graceMs`. */
  async close(graceMs = 2000): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#dispatchers.values()].map((d) => d.stop(graceMs)));
    this.#dispatchers.clear();
  }

  #system(id: string): Caller {
    return { principalId: `webhook:${id}`, grants: [{ action: 'subscribe', pattern: '>' }] };
  }

  #run(r: WebhookRecord): void {
    // Already running: `reload` (a notification of this instance's own write) may have come first.
    if (this.#closed || this.#dispatchers.has(r.id)) return;
    const d = new Dispatcher(r, {
      attach: async (sink) => {
        const view = await this.subscriptions.get(r.subscription, this.#system(r.id));
        this.#ordering.set(r.subscription, view.ordering);
        return this.subscriptions.attach(r.subscription, this.#system(r.id), sink, 0);
      },
      ordering: () => this.#ordering.get(r.subscription) ?? 'key',
      onDisable: (reason) => void this.#disable(r.id, reason).catch((e: unknown) => this.#error(e)),
      onClosed: (code) => {
        if (code === 'NOT_FOUND') void this.#forget(r.id).catch((e: unknown) => this.#error(e));
        else if (code !== 'SHUTTING_DOWN' && !this.#closed) {
          // Closed for a retriable reason (slow consumer; in cluster mode NOT_OWNER, the subscription
          // runs elsewhere): come back shortly, unless the endpoint was disabled or removed meanwhile.
          const d2 = this.#dispatchers.get(r.id);
          void d2?.stop().then(() =>
            setTimeout(() => {
              if (!this.#closed && this.#dispatchers.get(r.id) === d2) d2.start();
            }, 1000).unref(),
          );
        }
      },
      onError: (e) => this.#error(e),
    });
    this.#dispatchers.set(r.id, d);
    d.start();
  }

  #error(e: unknown): void {
    this.logger.error({ err: e }, 'webhook failure');
  }

  /** Stops an endpoint's dispatcher and forgets it (disabled or removed; enabling runs a new one). */
  async #drop(id: string): Promise<void> {
    const d = this.#dispatchers.get(id);
    this.#dispatchers.delete(id);
    await d?.stop();
  }

  async #forget(id: string): Promise<void> {
    await this.#drop(id);
    await this.store.delete(id);
  }

  async #disable(id: string, reason: string): Promise<void> {
    const r = await this.store.get(id);
    if (r === undefined) return;
    const at = new Date().toISOString();
    await this.store.put({ ...r, state: 'disabled', disabledAt: at, disabledReason: reason, updatedAt: at });
    await this.#drop(id);
    this.logger.warn({ webhook: id, subscription: r.subscription, reason }, 'webhook endpoint disabled');
    await this.audit.append({
      actor: `webhook:${id}`,
      action: 'webhook.disable',
      target: `${r.subscription}/${id}`,
      details: { reason },
    });
  }

  async #topics(name: string, caller: Caller): Promise<readonly string[]> {
    return (await this.subscriptions.get(name, caller)).topics;
  }

  async #requireAdmin(name: string, caller: Caller): Promise<void> {
    const topics = await this.#topics(name, caller);
    const ok = topics.every((t) =>
      caller.grants.some((g) => g.action === 'admin' && patternCovers(g.pattern, t)),
    );
    if (!ok)
      throw new CdsError(
        'FORBIDDEN',
        `managing webhooks of '${name}' needs admin on each of its topic patterns (${topics.join(', ')})`,
      );
  }

  #view(r: WebhookRecord, withSecret = false): WebhookView {
    const { secret, ...rest } = r;
    const d = r.state === 'active' ? this.#dispatchers.get(r.id) : undefined;
    return {
      ...rest,
      ...(withSecret ? { secret } : {}),
      health: d === undefined ? null : { ...d.health },
    };
  }

  async #get(name: string, id: string): Promise<WebhookRecord> {
    const r = await this.store.get(id);
    if (r === undefined || r.subscription !== name)
      throw new CdsError('NOT_FOUND', `no webhook '${id}' on subscription '${name}'`);
    return r;
  }

  /** Registers an endpoint; the answer carries the secret (generated when not given) this once. */
  async create(name: string, body: unknown, caller: Caller): Promise<WebhookView> {
    await this.#requireAdmin(name, caller);
    const input = parseWebhook(body);
    const existing = (await this.store.list()).filter((r) => r.subscription === name);
    if (existing.length >= MAX_PER_SUBSCRIPTION)
      throw new CdsError(
        'VALIDATION_FAILED',
        `subscription '${name}' has ${MAX_PER_SUBSCRIPTION} webhooks already`,
        {
          details: {
            errors: [
              { path: '', code: 'too_large', message: `at most ${MAX_PER_SUBSCRIPTION} per subscription` },
            ],
          },
        },
      );
    const at = new Date().toISOString();
    const rec: WebhookRecord = {
      id: `wh_${randomBytes(12).toString('base64url')}`,
      subscription: name,
      url: input.url,
      secret: input.secret ?? generateSecret(),
      maxConcurrency: input.maxConcurrency,
      timeoutMs: input.timeoutMs,
      batchSize: input.batchSize,
      backoff: input.backoff,
      disableAfter: input.disableAfter,
      state: 'active',
      createdBy: caller.principalId,
      createdAt: at,
      updatedAt: at,
    };
    await this.store.put(rec);
    this.#run(rec);
    await this.audit.append({
      actor: caller.principalId,
      action: 'webhook.create',
      target: `${name}/${rec.id}`,
      details: {
        url: rec.url,
        maxConcurrency: rec.maxConcurrency,
        batchSize: rec.batchSize,
        timeoutMs: rec.timeoutMs,
      },
    });
    return this.#view(rec, input.secret === undefined);
  }

  /** The endpoints of a subscription with their health. */
  async list(name: string, caller: Caller): Promise<WebhookView[]> {
    await this.#topics(name, caller);
    return (await this.store.list()).filter((r) => r.subscription === name).map((r) => this.#view(r));
  }

  /** One endpoint with its health. */
  async get(name: string, id: string, caller: Caller): Promise<WebhookView> {
    await this.#topics(name, caller);
    return this.#view(await this.#get(name, id));
  }

  /** Removes an endpoint; what it held comes again to the subscription's other consumers. */
  async remove(name: string, id: string, caller: Caller): Promise<void> {
    await this.#requireAdmin(name, caller);
    await this.#get(name, id);
    await this.#forget(id);
    await this.audit.append({
      actor: caller.principalId,
      action: 'webhook.delete',
      target: `${name}/${id}`,
      details: {},
    });
  }

  /** Re-enables a disabled endpoint (its failure streak starts over); enabling an active one is a no-op. */
  async enable(name: string, id: string, caller: Caller): Promise<WebhookView> {
    await this.#requireAdmin(name, caller);
    const r = await this.#get(name, id);
    if (r.state === 'active') return this.#view(r);
    const { disabledAt: _a, disabledReason: _r, ...rest } = r;
    const next: WebhookRecord = { ...rest, state: 'active', updatedAt: new Date().toISOString() };
    await this.store.put(next);
    const d = this.#dispatchers.get(id);
    if (d === undefined) this.#run(next);
    else {
      d.resetHealth(next);
      d.start();
    }
    await this.audit.append({
      actor: caller.principalId,
      action: 'webhook.enable',
      target: `${name}/${id}`,
      details: {},
    });
    return this.#view(next);
  }
}
