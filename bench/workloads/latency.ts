/**
 * Publish-to-delivery latency at 10,000, 50,000 and 100,000 decisions/s (one run each on a fresh
 * service) with the fanout profile's 200 subscribers. `--rates 5000,20000` sets the steps;
 * `--rate N` makes a single step. Smaller publish batches than fanout (100), so that a decision
 * does not wait behind many others of its own request.
 */
import { runDelivery } from '../lib/delivery.ts';
import { COMMON_DEFAULTS, type Workload } from '../lib/workload.ts';

/** The steps when neither --rates nor --rate is given. */
export const DEFAULT_RATES: readonly number[] = [10_000, 50_000, 100_000];

/** The latency workload. */
export const latency: Workload = {
  name: 'latency',
  description: 'p50/p99/p99.9 publish-to-delivery at 10,000, 50,000 and 100,000 decisions/s (one run each)',
  defaults: {
    ...COMMON_DEFAULTS,
    rate: 0,
    durationS: 30,
    warmupS: 5,
    batch: 100,
    connections: 8,
    subscribers: 200,
    subscriberProcesses: 4,
  },
  steps(opts) {
    const rates = opts.rates.length > 0 ? opts.rates : opts.rate > 0 ? [opts.rate] : DEFAULT_RATES;
    return rates.map((rate) => ({ label: `r${rate}`, opts: { ...opts, rate } }));
  },
  run: runDelivery,
};
