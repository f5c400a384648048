export type { EventLog, AppendRecord, LogRecord, Appended, PartitionExtent } from './port.ts';
export { firstAtOrAfter } from './time-seek.ts';
