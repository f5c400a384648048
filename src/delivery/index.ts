/** Public surface of the delivery engine (ADR 0009). */
export { DeliveryEngine, type EngineOptions } from './engine.ts';
export { SubscriptionRuntime } from './runtime.ts';
export type {
  AckResult,
  ConsumerHandle,
  ConsumerNotice,
  ConsumerSink,
  SubscriptionCounters,
} from './types.ts';
