export type { EventLog, AppendRecord, LogRecord, Appended, PartitionExtent } from './port.ts';
