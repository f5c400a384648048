/**
 * What the transports are given: the services the composition root (app.ts) built. Transports
 * depend on this type only, never on app.ts, so that the dependency picture stays one-way.
 */
import type { Config } from './config/index.ts';
import type { Publisher } from './ingest/publisher.ts';
import type { EventLog } from './log/index.ts';
import type { Logger } from './observability/logger.ts';
import type { Metrics } from './observability/metrics.ts';
import type { AuditTrail, Authenticator, PrincipalService, RateLimiter } from './security/index.ts';
import type { StateStore } from './state/index.ts';
import type { StatusTracker } from './status.ts';
import type { SubscriptionService } from './subscriptions/index.ts';
import type { DeliveryIntrospect } from './delivery/introspect.ts';
import type { LedgerService } from './ledger/index.ts';
import type { WebhookService } from './transports/webhook/service.ts';
import type { RuleSetService } from './routing/service.ts';
import type { RetentionService } from './retention/index.ts';
import type { BackupService } from './backup/index.ts';

/** Lifecycle flags read by health endpoints and every request. */
export interface Lifecycle {
  /** True once recovery finished and until shutdown starts. */
  ready: boolean;
  /** True from SIGTERM on. */
  draining: boolean;
}

/** The services of one instance. */
export interface AppContext {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly log: EventLog;
  readonly state: StateStore;
  readonly publisher: Publisher;
  readonly auth: Authenticator;
  readonly limiter: RateLimiter;
  readonly audit: AuditTrail;
  readonly principals: PrincipalService;
  readonly status: StatusTracker;
  readonly lifecycle: Lifecycle;
  /** Secret signing pagination cursors (per installation). */
  readonly cursorSecret: string;
  /** Subscriptions and their delivery (ADR 0009). */
  readonly subscriptions: SubscriptionService;
  /** Read-only views of delivery state: health per subscription (subscriptions issue item 6). */
  readonly deliveries: DeliveryIntrospect;
  /** The delivery ledger (ADR 0011). */
  readonly ledger: LedgerService;
  /** Webhook endpoints of subscriptions (ADR 0010). */
  readonly webhooks: WebhookService;
  /** Versioned routing rule sets (ADR 0013). */
  readonly rules: RuleSetService;
  /** Retention policies and their application (ADR 0017). */
  readonly retention: RetentionService;
  /** Backups of the data directory while the service runs (ADR 0014). */
  readonly backups: BackupService;
}
