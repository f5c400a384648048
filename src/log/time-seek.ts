/** Finding where a time starts in a partition of any EventLog (subscription start and seek, history). */
import type { EventLog } from './port.ts';

/**
 * The first offset in [lo, hi) of `partition` whose record was received at or after `time` (ms), or
 * `hi` when none was: a binary search, since receivedAt does not decrease within a partition (it is
 * taken when a batch is handed to the log, in append order). About log2(hi - lo) single reads.
 */
export async function firstAtOrAfter(
  log: EventLog,
  partition: number,
  lo: number,
  hi: number,
  time: number,
): Promise<number> {
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const r = await log.readOne(partition, mid);
    if (r === undefined || r.timestamp < time) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
