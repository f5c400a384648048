/** The embedded EventLog adapter: a segment log in the data directory (ADR 0002). */
export { SegmentLog, DEFAULT_SEGMENT_BYTES, type SegmentLogOptions } from './segment-log.ts';
