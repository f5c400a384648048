/** Public surface of subscription management (DESIGN 5; ADR 0009). */
export { SubscriptionService, type Placement, type SubscriptionView } from './service.ts';
export {
  parseCreate,
  parsePatch,
  patternCovers,
  SPEC_DEFAULTS,
  type SubscriptionSpec,
  type StartSpec,
  type SlowConsumerSpec,
  type BackoffSpec,
  type SubscriptionState,
} from './spec.ts';
