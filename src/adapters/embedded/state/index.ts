/** The embedded (LMDB) StateStore adapter. */
export { LmdbStateStore } from './lmdb-state-store.ts';
export { DEFAULT_SCAN_LIMIT } from './row-scan.ts';
