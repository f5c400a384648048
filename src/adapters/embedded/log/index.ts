/** The embedded EventLog adapter: a segment log in the data directory (ADR 0002). */
export {
  SegmentLog,
  DEFAULT_SEGMENT_BYTES,
  type SegmentLogOptions,
  type LogSnapshot,
} from './segment-log.ts';
