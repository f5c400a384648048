/** The embedded WebhookStore (ADR 0010). */
export { LmdbWebhookStore } from './lmdb-webhook-store.ts';
