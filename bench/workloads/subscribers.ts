/**
 * A ladder of subscriber counts at one rate: 1, 100, 1,000 and 2,000 subscribers of the fanout
 * profile (90% portfolio slices, 10% asset class or priority; 2.05 deliveries per decision from 200
 * subscribers up, 1.73 at 100, 1 at 1) at --rate, one run each on a fresh service. `--ladder 1,10` sets the steps;
 * `--subscribers N` makes a single step.
 */
import { runDelivery } from '../lib/delivery.ts';
import { COMMON_DEFAULTS, type Workload } from '../lib/workload.ts';

/** The steps when neither --ladder nor --subscribers is given. */
export const DEFAULT_LADDER: readonly number[] = [1, 100, 1000, 2000];

/** The subscribers workload. */
export const subscribers: Workload = {
  name: 'subscribers',
  description: 'the fanout profile at --rate with 1, 100, 1,000 and 2,000 subscribers (one run each)',
  defaults: {
    ...COMMON_DEFAULTS,
    rate: 50_000,
    durationS: 30,
    warmupS: 5,
    batch: 500,
    connections: 8,
    subscribers: 0,
    subscriberProcesses: 4,
  },
  steps(opts) {
    const ladder =
      opts.ladder.length > 0 ? opts.ladder : opts.subscribers > 0 ? [opts.subscribers] : DEFAULT_LADDER;
    return ladder.map((n) => ({ label: `s${n}`, opts: { ...opts, subscribers: n } }));
  },
  run: runDelivery,
};
