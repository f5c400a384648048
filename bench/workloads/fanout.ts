/**
 * The seed's workload (issue 9): 200,000 decisions/s for 60 s through REST; 200 subscribers in
 * processes of their own, 180 each filtered to a slice of the portfolios and 20 by asset class or
 * priority (about 2 deliveries per decision), split between gRPC Sessions and WebSocket. The
 * distributions and filters are data: bench/workloads/fanout-profile.json.
 */
import { runDelivery } from '../lib/delivery.ts';
import { COMMON_DEFAULTS, type Workload } from '../lib/workload.ts';

/** The fanout workload. */
export const fanout: Workload = {
  name: 'fanout',
  description: 'publish at --rate with --subscribers filtered subscribers (the profile), ~2 deliveries each',
  defaults: {
    ...COMMON_DEFAULTS,
    rate: 200_000,
    durationS: 60,
    warmupS: 5,
    batch: 500,
    connections: 8,
    subscribers: 200,
    subscriberProcesses: 4,
  },
  run: runDelivery,
};
