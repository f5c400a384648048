/** The embedded SubscriptionStore (ADR 0009). */
export { LmdbSubscriptionStore } from './lmdb-subscription-store.ts';
