/**
 * Messages between the harness and the load generator process (over the fork IPC channel), and
 * the shape of what the generator measures.
 */

/** What the generator is told to do. */
export interface GeneratorConfig {
  readonly url: string;
  readonly key: string;
  /** Offered load, decisions per second. */
  readonly rate: number;
  /** Decisions per POST (1 sends a single object, not an array). */
  readonly batch: number;
  /** Keep-alive connections (the most requests in flight at once). */
  readonly connections: number;
  /** Measured seconds. */
  readonly durationS: number;
  /** Seconds of load before measuring (acknowledged decisions still count for the lost check). */
  readonly warmupS: number;
  /** Decision ids are `<idPrefix>-<n>`, n = request index * batch + item index. */
  readonly idPrefix: string;
  readonly seed: number;
  readonly portfolios: number;
  /** Longest wait for the answers still due after the last send, in ms. */
  readonly drainTimeoutMs: number;
  /** Width of a rate window, seconds. */
  readonly windowS: number;
  /**
   * Where decision bodies come from: the seeded test generator (`seed`, `portfolios`; the ingest
   * workload) or a profile file (bench/lib/profile.ts; the delivery workloads).
   */
  readonly source?: { readonly kind: 'profile'; readonly file: string };
  /** This process sends requests k with k mod count = index (several generators share one schedule). */
  readonly shard?: { readonly index: number; readonly count: number };
}

/** A latency summary in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** One rate window of the measured period. */
export interface RateWindow {
  readonly startS: number;
  /** Decisions scheduled to be sent in the window. */
  readonly offered: number;
  /** Decisions acknowledged in the window (by acknowledgement time). */
  readonly acknowledged: number;
  readonly offeredRate: number;
  readonly achievedRate: number;
  /** achieved / offered. */
  readonly ratio: number;
}

/** What the generator reports at the end. */
export interface GeneratorReport {
  /** Request k (decisions k * batch .. k * batch + batch - 1) was due at startMono + k * intervalMs. */
  readonly startMono: number;
  readonly intervalMs: number;
  /** startMono + warm-up: the measured period starts here (shared monotonic ms). */
  readonly measureStartMono: number;
  /** Requests of the whole schedule (all shards). */
  readonly requestsTotal: number;
  /** Wall seconds from the start of the measured period to the last answer. */
  readonly measuredWallS: number;
  readonly requestsSent: number;
  readonly requestsAcked: number;
  readonly decisionsSent: number;
  readonly decisionsAcked: number;
  /** Acknowledged decisions in the measured period (not the warm-up). */
  readonly measuredDecisionsAcked: number;
  /** Acknowledgements marked `duplicate: true` (every id is new, so this should be 0). */
  readonly duplicateAcks: number;
  /** Failed requests by HTTP status or `network`. */
  readonly errors: Readonly<Record<string, number>>;
  /** Indexes of acknowledged requests (their decision ids follow from the batch size). */
  readonly ackedRequests: readonly number[];
  /** Latency from the intended send time to the end of the answer (coordinated omission corrected). */
  readonly publishAck: LatencySummary;
  /** How late the scheduler actually sent (shows a saturated generator). */
  readonly sendLag: LatencySummary;
  /** The publishAck histogram, encoded (bench/lib/hdr.ts), for merging and plots. */
  readonly publishAckHistogram: string;
  readonly sendLagHistogram: string;
  /** Decisions due per second of the measured period (by intended send time). */
  readonly offeredPerSecond: readonly number[];
  /** Decisions acknowledged per second from the start of the measured period (by answer time). */
  readonly ackedPerSecond: readonly number[];
  readonly windows: readonly RateWindow[];
  /** Requests still unanswered when the drain timeout passed. */
  readonly unanswered: number;
  readonly cpu: { readonly userS: number; readonly systemS: number };
  readonly peakRssMb: number;
}

/** Generator -> harness. */
export type GeneratorMessage =
  | { readonly type: 'loaded' }
  | { readonly type: 'measuring' }
  | { readonly type: 'sent' }
  | { readonly type: 'done'; readonly report: GeneratorReport }
  | { readonly type: 'failed'; readonly error: string };

/** Harness -> generator: the configuration, then (after `loaded`) the start of the schedule. */
export type GeneratorCommand =
  | { readonly type: 'config'; readonly config: GeneratorConfig }
  | {
      readonly type: 'go';
      /** The schedule's start in shared monotonic ms (bench/lib/clock.ts). */
      readonly startMono: number;
    };
