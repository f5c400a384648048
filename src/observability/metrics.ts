/**
 * Prometheus metrics (DESIGN 10). One registry per service instance (never the global one), so that
 * tests can build several apps in one process.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The numbers of one subscription that the per-subscription metrics show. */
export interface SubscriptionMetricSample {
  readonly name: string;
  readonly lag: number;
  readonly inFlight: number;
  readonly redelivered: number;
  readonly deadLettered: number;
  readonly delivered: number;
  readonly acked: number;
}

/** The metrics of one instance. */
export class Metrics {
  readonly registry = new Registry();
  readonly published = new Counter({
    name: 'cds_decisions_published_total',
    help: 'Decisions stored by publish (duplicates excluded).',
    registers: [this.registry],
  });
  readonly duplicates = new Counter({
    name: 'cds_publish_duplicates_total',
    help: 'Published items that were duplicates of stored decisions.',
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'cds_publish_rejected_total',
    help: 'Published items refused, by error code.',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly publishSeconds = new Histogram({
    name: 'cds_publish_duration_seconds',
    help: 'Time from receiving a publish request to its durable acknowledgement.',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'cds_publish_batch_size',
    help: 'Decisions per publish request.',
    buckets: [1, 10, 100, 500, 1000, 5000, 10000],
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: 'cds_http_requests_total',
    help: 'HTTP requests by route and status.',
    labelNames: ['route', 'status'],
    registers: [this.registry],
  });
  readonly denied = new Counter({
    name: 'cds_access_denied_total',
    help: 'Denied accesses by code.',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly logNextOffset = new Gauge({
    name: 'cds_log_next_offset',
    help: 'Next offset of each log partition.',
    labelNames: ['partition'],
    registers: [this.registry],
  });
  readonly logBytes = new Gauge({
    name: 'cds_log_stored_bytes',
    help: 'Bytes held by the log.',
    registers: [this.registry],
  });
  readonly indexBacklog = new Gauge({
    name: 'cds_index_backlog',
    help: 'Decisions acknowledged but not yet in the decision index.',
    registers: [this.registry],
  });
  readonly ready = new Gauge({
    name: 'cds_ready',
    help: '1 when the instance accepts work.',
    registers: [this.registry],
  });

  /** Per-subscription numbers, read at scrape time (set by the composition root). */
  #subscriptions: () => Iterable<SubscriptionMetricSample> = () => [];
  readonly subscriptionLag = this.#perSubscription(
    Gauge,
    'cds_subscription_lag',
    'Records between the ack floor and the log tail.',
    (s) => s.lag,
  );
  readonly subscriptionInFlight = this.#perSubscription(
    Gauge,
    'cds_subscription_in_flight',
    'Deliveries sent and not yet acknowledged.',
    (s) => s.inFlight,
  );
  readonly subscriptionRedeliveries = this.#perSubscription(
    Counter,
    'cds_subscription_redeliveries_total',
    'Deliveries sent again (delivery count above 1) since start.',
    (s) => s.redelivered,
  );
  readonly subscriptionDeadLetters = this.#perSubscription(
    Counter,
    'cds_subscription_dead_letters_total',
    'Decisions dead-lettered since start.',
    (s) => s.deadLettered,
  );
  readonly subscriptionDelivered = this.#perSubscription(
    Counter,
    'cds_subscription_delivered_total',
    'Deliveries sent (first and again) since start.',
    (s) => s.delivered,
  );
  readonly subscriptionAcked = this.#perSubscription(
    Counter,
    'cds_subscription_acked_total',
    'Deliveries acknowledged since start.',
    (s) => s.acked,
  );

  /** Where the per-subscription metrics read from at scrape time. */
  setSubscriptionSource(source: () => Iterable<SubscriptionMetricSample>): void {
    this.#subscriptions = source;
  }

  #perSubscription<M extends Gauge | Counter>(
    Kind: new (c: {
      name: string;
      help: string;
      labelNames: string[];
      registers: Registry[];
      collect: () => void;
    }) => M,
    name: string,
    help: string,
    value: (s: SubscriptionMetricSample) => number,
  ): M {
    const source = () => this.#subscriptions();
    // Computed from the engine's counters when scraped, never on the delivery path.
    const metric: M = new Kind({
      name,
      help,
      labelNames: ['subscription'],
      registers: [this.registry],
      collect: () => {
        metric.reset();
        for (const s of source()) {
          if (metric instanceof Gauge) metric.set({ subscription: s.name }, value(s));
          else metric.inc({ subscription: s.name }, value(s));
        }
      },
    });
    return metric;
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'cds_process_' });
  }
}
