/** Live status (GET /v1/status): rates over the last 10 seconds, totals, log extents, index lag. */
import type { PublishCounters } from './ingest/publisher.ts';

const WINDOW = 10;

/** Samples publish counters once a second to report recent rates. */
export class StatusTracker {
  private readonly samples: {
    at: number;
    published: number;
    duplicates: number;
    rejected: number;
    batches: number;
  }[] = [];
  private timer: NodeJS.Timeout | undefined;
  readonly startedAt = new Date();

  constructor(private readonly counters: PublishCounters) {}

  /** Starts sampling. */
  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }

  /** Stops sampling. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private sample(): void {
    this.samples.push({ at: performance.now(), ...this.counters });
    if (this.samples.length > WINDOW + 1) this.samples.shift();
  }

  /** Per-second rates over the sampled window (up to 10 s), including the current partial second. */
  rates(): {
    publishedPerSecond: number;
    duplicatesPerSecond: number;
    rejectedPerSecond: number;
    batchesPerSecond: number;
    windowSeconds: number;
  } {
    const first = this.samples[0];
    const now = { at: performance.now(), ...this.counters };
    if (first === undefined || now.at - first.at < 1)
      return {
        publishedPerSecond: 0,
        duplicatesPerSecond: 0,
        rejectedPerSecond: 0,
        batchesPerSecond: 0,
        windowSeconds: 0,
      };
    const s = (now.at - first.at) / 1000;
    const r = (k: 'published' | 'duplicates' | 'rejected' | 'batches') => Math.round((now[k] - first[k]) / s);
    return {
      publishedPerSecond: r('published'),
      duplicatesPerSecond: r('duplicates'),
      rejectedPerSecond: r('rejected'),
      batchesPerSecond: r('batches'),
      windowSeconds: Math.round(s * 10) / 10,
    };
  }
}
