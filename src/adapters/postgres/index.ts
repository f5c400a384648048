/** The PostgreSQL StateStore adapter (cluster mode, DESIGN 2 and 6). */
export { PostgresStateStore, type PostgresStateStoreOptions } from './postgres-state-store.ts';
export { DEFAULT_SCAN_LIMIT } from './decision-index.ts';
export { loadMigrations, MIGRATION_LOCK_KEY, type Migration, type MigrationResult } from './migrations.ts';
export { PostgresSubscriptionStore } from './subscription-store.ts';
export { PostgresRuleStore, RULES_LOCK_KEY } from './rule-store.ts';
export { PostgresRetentionStore } from './retention-store.ts';
export { PostgresWebhookStore } from './webhook-store.ts';
export { PostgresLedgerStore } from './ledger-store.ts';
export { openPool, describeUrl, type PoolOptions } from './connect.ts';
export {
  PostgresChangeFeed,
  type ChangeFeed,
  type ChangeFeedOptions,
  type StateChange,
} from './change-feed.ts';
export { PostgresLeaseStore } from './lease-store.ts';
export { PostgresReservationStore } from './reservation-store.ts';
