/**
 * Historical retrieval (ADR 0019): the records of offset ranges read from the log in order, the
 * selected ones encoded as NDJSON, handed out as chunks of bytes. The caller pulls the next chunk only
 * when it has written the last one, so a slow client slows the reads and memory stays flat (one log
 * read batch and one chunk at a time), however long the range.
 */
import { CdsError } from '../errors/index.ts';
import type { EventLog, LogRecord } from '../log/index.ts';
import { ChunkWriter, type LineEncoder } from './lines.ts';
import type { PartitionRange } from './range.ts';

/** Records per log read (about 700 KiB of decisions: one pread); two are held at most (one in flight). */
export const READ_BATCH = 1024;
/** A chunk is handed out once it holds this many bytes (and at the end). */
export const CHUNK_BYTES = 256 * 1024;

/** One piece of the stream, with the progress made so far. */
export interface HistoryChunk {
  readonly bytes: Buffer;
  /** Records read so far (selected or not). */
  readonly read: number;
  /** Lines written so far. */
  readonly lines: number;
}

/**
 * The records of one offset range in batches, in order, the next read in flight while the caller
 * works on a batch (and while its output is written out). Stops when `signal` aborts. Records removed
 * by retention during the read end it with POSITION_TRIMMED, or with `skipTrimmed` are passed over
 * (what is left is still in order).
 */
export async function* recordBatches(
  log: EventLog,
  range: PartitionRange,
  opts: { signal?: AbortSignal; batch?: number; skipTrimmed?: boolean } = {},
): AsyncGenerator<LogRecord[]> {
  const batch = opts.batch ?? READ_BATCH;
  const readAt = (o: number) => {
    const p = log.read(range.partition, o, Math.min(batch, range.to - o));
    p.catch(() => undefined); // awaited below, unless the caller stops first
    return p;
  };
  let off = range.from;
  let next = off < range.to ? readAt(off) : undefined;
  while (next !== undefined) {
    let recs = await next;
    next = undefined;
    if (opts.signal?.aborted) return;
    if (recs.length === 0 || recs[0]!.offset !== off) {
      const first = log.extents()[range.partition]?.first ?? off;
      if (opts.skipTrimmed === true) {
        if (recs.length === 0) return; // the rest of the range is gone
      } else
        throw new CdsError(
          'POSITION_TRIMMED',
          `${range.partition}:${off} was removed by retention during the read; partition ${range.partition} starts at ${range.partition}:${first}`,
          { details: { first: `${range.partition}:${first}` } },
        );
    }
    // A read that started past trimmed records may run beyond the range's end.
    if (recs[recs.length - 1]!.offset >= range.to) recs = recs.filter((r) => r.offset < range.to);
    if (recs.length === 0) return;
    off = recs[recs.length - 1]!.offset + 1;
    if (off < range.to) next = readAt(off);
    yield recs;
  }
}

/**
 * Reads `ranges` (partition by partition, each in offset order) and yields the selected records as
 * NDJSON chunks. A range trimmed by retention while it is being read ends with POSITION_TRIMMED (the
 * lines already handed out are dense up to that point).
 */
export async function* historyChunks(
  log: EventLog,
  ranges: readonly PartitionRange[],
  encoder: LineEncoder,
  opts: { signal?: AbortSignal; batch?: number; chunkBytes?: number } = {},
): AsyncGenerator<HistoryChunk> {
  const chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
  const out = new ChunkWriter(chunkBytes + 64 * 1024);
  let read = 0;
  let lines = 0;
  for (const range of ranges) {
    for await (const recs of recordBatches(log, range, opts)) {
      // A chunk is handed out as soon as it is full, mid-batch: the writer never grows past it.
      for (const r of recs) {
        read++;
        if (encoder.encode(r, out) && ++lines > 0 && out.length >= chunkBytes)
          yield { bytes: out.take(), read, lines };
      }
    }
  }
  if (out.length > 0) yield { bytes: out.take(), read, lines };
}
