/** Prometheus metrics of retention (ADR 0017), registered on the instance's registry. */
import { Counter, Gauge, type Registry } from 'prom-client';

/** The retention metrics of one instance. */
export class RetentionMetrics {
  readonly removedRecords: Counter<'partition' | 'policy'>;
  readonly removedBytes: Counter<'partition' | 'policy'>;
  readonly lastRunSeconds: Gauge;
  readonly runs: Counter;
  readonly subscriptionsLost: Counter<'subscription'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.removedRecords = new Counter({
      name: 'cds_retention_removed_records_total',
      help: 'Records retention removed from the log, by partition and governing policy (a record governed by two policies counts for each).',
      labelNames: ['partition', 'policy'],
      registers,
    });
    this.removedBytes = new Counter({
      name: 'cds_retention_removed_bytes_total',
      help: 'Payload bytes retention removed from the log, by partition and governing policy.',
      labelNames: ['partition', 'policy'],
      registers,
    });
    this.lastRunSeconds = new Gauge({
      name: 'cds_retention_last_run_seconds',
      help: 'Duration of the last retention run.',
      registers,
    });
    this.runs = new Counter({ name: 'cds_retention_runs_total', help: 'Retention runs.', registers });
    this.subscriptionsLost = new Counter({
      name: 'cds_retention_subscription_losses_total',
      help: 'Times a drop policy removed records a subscription had not acknowledged, by subscription.',
      labelNames: ['subscription'],
      registers,
    });
  }
}
