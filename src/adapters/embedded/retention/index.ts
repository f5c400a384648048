/** The embedded RetentionPolicyStore (ADR 0014). */
export { LmdbRetentionStore } from './lmdb-retention-store.ts';
