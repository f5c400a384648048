/**
 * Historical retrieval (ADR 0019): the records of offset ranges read from the log in order, the
 * selected ones encoded as NDJSON, handed out as chunks of bytes. The caller pulls the next chunk only
 * when it has written the last one, so a slow client slows the reads and memory stays flat (one log
 * read batch and one chunk at a time), however long the range.
 */
import { CdsError } from '../errors/index.ts';
import type { EventLog } from '../log/index.ts';
import { ChunkWriter, type LineEncoder } from './lines.ts';
import type { PartitionRange } from './range.ts';

/** Records per log read (the log reads them in one or a few large preads). */
export const READ_BATCH = 4096;
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
 * Reads `ranges` (partition by partition, each in offset order) and yields the selected records as
 * NDJSON chunks. Stops between reads when `signal` aborts. A range trimmed by retention while it is
 * being read ends with POSITION_TRIMMED (the lines already handed out are dense up to that point).
 */
export async function* historyChunks(
  log: EventLog,
  ranges: readonly PartitionRange[],
  encoder: LineEncoder,
  opts: { signal?: AbortSignal; batch?: number; chunkBytes?: number } = {},
): AsyncGenerator<HistoryChunk> {
  const batch = opts.batch ?? READ_BATCH;
  const chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
  const out = new ChunkWriter(chunkBytes + 64 * 1024);
  let read = 0;
  let lines = 0;
  for (const range of ranges) {
    let off = range.from;
    const readAt = (o: number) => {
      const p = log.read(range.partition, o, Math.min(batch, range.to - o));
      p.catch(() => undefined); // awaited below, unless the reader stops first
      return p;
    };
    // The next read is in flight while a batch is encoded (and while its chunk is written out).
    let next = off < range.to ? readAt(off) : undefined;
    while (next !== undefined) {
      const recs = await next;
      next = undefined;
      if (opts.signal?.aborted) return;
      if (recs.length === 0 || recs[0]!.offset !== off) {
        const first = log.extents()[range.partition]?.first ?? off;
        throw new CdsError(
          'POSITION_TRIMMED',
          `${range.partition}:${off} was removed by retention during the read; partition ${range.partition} starts at ${range.partition}:${first}`,
          { details: { first: `${range.partition}:${first}` } },
        );
      }
      off = recs[recs.length - 1]!.offset + 1;
      if (off < range.to) next = readAt(off);
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
