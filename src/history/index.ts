/** Historical retrieval, the latest-revision view and their NDJSON lines (ADR 0019). */
export { resolveRange, type Bound, type PartitionRange } from './range.ts';
export { ChunkWriter, LineEncoder, expiresAtOf, type LineOptions } from './lines.ts';
export { historyChunks, recordBatches, CHUNK_BYTES, READ_BATCH, type HistoryChunk } from './reader.ts';
export { latestChunks, type LatestOptions } from './latest.ts';
