/**
 * The latest-revision view of a topic (ADR 0019), as a compacted topic gives it: of each decision,
 * the last revision stored on the topic before the snapshot's positions. One pass over the log in
 * order; a record is emitted unless the decision index knows a higher revision of its decision, before
 * the snapshot, that is also on the topic. Memory stays flat: no map of decisions is kept.
 */
import type { DecisionIndex } from '../state/index.ts';
import { HEADERS } from '../ingest/record.ts';
import type { EventLog, LogRecord } from '../log/index.ts';
import { ChunkWriter, type LineEncoder } from './lines.ts';
import type { PartitionRange } from './range.ts';
import { CHUNK_BYTES, recordBatches, type HistoryChunk } from './reader.ts';

/** What the latest view leaves out. */
export interface LatestOptions {
  /** Leave out decisions whose latest revision on the topic is a cancellation (type `cancel`). */
  readonly excludeCancelled?: boolean;
  /** Leave out decisions whose latest revision on the topic is past its expiresAt. */
  readonly excludeExpired?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * Yields the latest view of what `encoder` selects among the records of `ranges`, which must end at
 * the snapshot's positions (one per partition) and be covered by the decision index (the caller
 * waits for its checkpoint to reach them). Lines come in log order.
 */
export async function* latestChunks(
  log: EventLog,
  index: DecisionIndex,
  ranges: readonly PartitionRange[],
  encoder: LineEncoder,
  opts: LatestOptions = {},
): AsyncGenerator<HistoryChunk> {
  const end = new Map(ranges.map((r) => [r.partition, r.to]));
  const out = new ChunkWriter(CHUNK_BYTES + 64 * 1024);
  let read = 0;
  let lines = 0;
  for (const range of ranges) {
    // Records trimmed during the scan are passed over: the view is of what the log still holds.
    for await (const recs of recordBatches(log, range, { ...opts, skipTrimmed: true })) {
      const picked = recs.filter((r) => encoder.topicsOf(r).selected);
      const ids = [...new Set(picked.map((r) => r.headers[HEADERS.decisionId] ?? ''))];
      const revisions = await index.revisions(ids);
      for (const r of picked) {
        if (await superseded(r, revisions.get(r.headers[HEADERS.decisionId] ?? ''), end, index, encoder))
          continue;
        const payload = Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength);
        if (opts.excludeExpired === true && encoder.expired(r, payload)) continue;
        if (opts.excludeCancelled === true && (r.headers[HEADERS.type] ?? typeOf(payload)) === 'cancel')
          continue;
        encoder.write(r, encoder.topicsOf(r), out);
        lines++;
        if (out.length >= CHUNK_BYTES) yield { bytes: out.take(), read, lines };
      }
      read += recs.length;
    }
  }
  if (out.length > 0) yield { bytes: out.take(), read, lines };
}

/** Whether a higher revision of r's decision, stored before the snapshot, is on the topic too. */
async function superseded(
  r: LogRecord,
  refs: readonly { revision: number; partition: number; offset: number }[] | undefined,
  end: ReadonlyMap<number, number>,
  index: DecisionIndex,
  encoder: LineEncoder,
): Promise<boolean> {
  if (refs === undefined) return false;
  const revision = Number(r.headers[HEADERS.revision]);
  for (const ref of refs) {
    if (ref.revision <= revision || ref.offset >= (end.get(ref.partition) ?? 0)) continue;
    const entry = await index.get(r.headers[HEADERS.decisionId] ?? '', ref.revision);
    if (entry !== undefined && encoder.selects(entry.topics)) return true;
  }
  return false;
}

/** The decision's type, for records stored before it had a header (the payload parsed). */
function typeOf(payload: Buffer): unknown {
  try {
    return (JSON.parse(payload.toString('utf8')) as { type?: unknown }).type;
  } catch {
    return undefined;
  }
}
