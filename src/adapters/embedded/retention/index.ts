/** The embedded RetentionPolicyStore (ADR 0017). */
export { LmdbRetentionStore } from './lmdb-retention-store.ts';
