/** The delivery ledger (DESIGN 5; ADR 0011): records per cursor commit and the query over them. */
export type { CommitRecord, CommitRecordAt, LedgerStore } from './port.ts';
export { LmdbLedgerStore } from './lmdb-store.ts';
export { LedgerRecorder, inRanges } from './recorder.ts';
export { LedgerPruner, LedgerPruneMetrics, type LedgerPruneReport, type LedgerRetention } from './pruner.ts';
export {
  LedgerService,
  type LedgerAnswer,
  type LedgerLine,
  type LedgerState,
  type FilteredLine,
} from './service.ts';
