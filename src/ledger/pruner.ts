/**
 * The ledger's own retention (ADR 0011): on a timer, commit records older than `ledger.retentionMs`
 * go, then the oldest beyond `ledger.maxRecords`. Independent of the log's retention: a record only
 * says when a subscription saw and resolved offsets, and is worth keeping while someone may ask.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { Periodic } from '../retention/periodic.ts';
import type { LedgerStore } from './port.ts';

/** The limits (the `ledger.*` configuration keys). */
export interface LedgerRetention {
  /** Records committed longer ago than this go (ms); 0 keeps them whatever their age. */
  readonly retentionMs: number;
  /** At most this many records stay (the newest); undefined: no limit. */
  readonly maxRecords?: number;
  /** Milliseconds between runs. */
  readonly intervalMs: number;
}

/** What one run did. */
export interface LedgerPruneReport {
  /** ISO 8601. */
  readonly at: string;
  readonly removed: number;
  readonly durationMs: number;
}

/** Prometheus metrics of the ledger's retention, on the instance's registry. */
export class LedgerPruneMetrics {
  readonly removedRecords: Counter;
  readonly lastRunSeconds: Gauge;
  readonly runs: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.removedRecords = new Counter({
      name: 'cds_ledger_pruned_records_total',
      help: 'Ledger commit records removed by the ledger retention (ledger.retentionMs, ledger.maxRecords).',
      registers,
    });
    this.lastRunSeconds = new Gauge({
      name: 'cds_ledger_prune_last_run_seconds',
      help: 'Duration of the last ledger retention run.',
      registers,
    });
    this.runs = new Counter({
      name: 'cds_ledger_prune_runs_total',
      help: 'Ledger retention runs.',
      registers,
    });
  }
}

/** Applies the ledger's retention to its store, on a timer or when called. */
export class LedgerPruner {
  readonly #periodic: Periodic<LedgerPruneReport>;
  #last: LedgerPruneReport | undefined;

  constructor(
    private readonly store: LedgerStore,
    private readonly limits: LedgerRetention,
    private readonly metrics: LedgerPruneMetrics,
    onError: (e: unknown) => void,
  ) {
    this.#periodic = new Periodic((now) => this.#run(now), onError);
  }

  /** Starts the timer (a run at a time: a tick during a run is skipped). Nothing to do without limits. */
  start(): void {
    if (this.limits.retentionMs === 0 && this.limits.maxRecords === undefined) return;
    this.#periodic.start(this.limits.intervalMs);
  }

  /** Stops the timer and waits for a run in progress. */
  stop(): Promise<void> {
    return this.#periodic.stop();
  }

  /** The last run's report, if one ran. */
  get lastRun(): LedgerPruneReport | undefined {
    return this.#last;
  }

  /** One run (the timer calls it; tests call it with their own `now`). */
  run(now = Date.now()): Promise<LedgerPruneReport> {
    return this.#periodic.run(now);
  }

  async #run(now: number): Promise<LedgerPruneReport> {
    const t0 = performance.now();
    let removed = 0;
    if (this.limits.retentionMs > 0) removed += await this.store.prune(now - this.limits.retentionMs);
    if (this.limits.maxRecords !== undefined) {
      // The newest maxRecords stay: every record as old as the first one beyond them goes.
      const t = await this.store.nthNewestTime(this.limits.maxRecords + 1);
      if (t !== undefined) removed += await this.store.prune(t + 1);
    }
    const durationMs = performance.now() - t0;
    this.metrics.removedRecords.inc(removed);
    this.metrics.lastRunSeconds.set(durationMs / 1000);
    this.metrics.runs.inc();
    const report = { at: new Date(now).toISOString(), removed, durationMs };
    this.#last = report;
    return report;
  }
}
