/**
 * The WebhookStore port (DESIGN 7; ADR 0010): webhook endpoints registered on subscriptions, with
 * their signing secret and their enabled/disabled state. Health counters live in memory; only state
 * changes (create, disable, enable, delete) are written. Every write resolves once it is durable.
 */

/** Retry backoff of one endpoint (exponential, full jitter). */
export interface WebhookBackoff {
  /** First delay, in ms. */
  readonly initialMs: number;
  /** Cap of the delay, in ms. */
  readonly maxMs: number;
}

/** When an endpoint is disabled: `failures` consecutive failures lasting at least `periodMs`. */
export interface WebhookDisablePolicy {
  readonly failures: number;
  readonly periodMs: number;
}

/** One stored webhook endpoint. */
export interface WebhookRecord {
  /** `wh_` + random; unique over all subscriptions. */
  readonly id: string;
  readonly subscription: string;
  /** http(s) URL the batches are POSTed to. */
  readonly url: string;
  /** `whsec_` + base64 of the key bytes (Standard Webhooks); never shown after creation. */
  readonly secret: string;
  /** Requests in flight at most. */
  readonly maxConcurrency: number;
  /** Per-request timeout, in ms. */
  readonly timeoutMs: number;
  /** Deliveries per request at most. */
  readonly batchSize: number;
  readonly backoff: WebhookBackoff;
  readonly disableAfter: WebhookDisablePolicy;
  readonly state: 'active' | 'disabled';
  /** ISO 8601, set while disabled. */
  readonly disabledAt?: string;
  readonly disabledReason?: string;
  /** Principal that registered it. */
  readonly createdBy: string;
  /** ISO 8601. */
  readonly createdAt: string;
  /** ISO 8601. */
  readonly updatedAt: string;
}

/** Durable webhook endpoints. */
export interface WebhookStore {
  /** Every endpoint, in id order. */
  list(): Promise<WebhookRecord[]>;
  /** One endpoint, or undefined. */
  get(id: string): Promise<WebhookRecord | undefined>;
  /** Creates or replaces an endpoint. */
  put(record: WebhookRecord): Promise<void>;
  /** Removes an endpoint; false when it did not exist. */
  delete(id: string): Promise<boolean>;
  /** Closes the store (idempotent). */
  close(): Promise<void>;
}
