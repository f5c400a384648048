/**
 * The decision-index writer: a worker thread owned by LmdbDecisionIndex. It opens the same LMDB
 * environment (lmdb-js shares one environment between the threads of a process) and writes each
 * `add()` batch in one synchronous transaction, so the B-tree work of an entry and its six secondary
 * keys (about 20 us per entry measured on the main thread) is off the main thread, which only packs
 * the batch into columns and posts it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { concatColumns, openDbs, writeBatch, type EntryColumns } from './layout.ts';
import type { WriterReply, WriterRequest } from './writer-protocol.ts';

const port = parentPort;
if (port === null) throw new Error('index-writer must run as a worker thread');

const dbs = openDbs((workerData as { path: string }).path);

// Batches that arrived while the previous transaction ran are written together (group commit): one
// commit and fsync, and posting chunks merged across them, so the writer speeds up as it falls behind.
// Each add() stays atomic (its entries and checkpoint are in the one transaction).
let queue: Extract<WriterRequest, { kind: 'add' }>[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  const group = queue;
  queue = [];
  if (group.length === 0) return;
  const through: Record<number, number> = {};
  for (const m of group) Object.assign(through, m.through);
  try {
    const columns: EntryColumns =
      group.length === 1
        ? (group[0] as (typeof group)[0]).columns
        : concatColumns(group.map((m) => m.columns));
    dbs.env.transactionSync(() => writeBatch(dbs, columns, through));
    for (const m of group) port?.postMessage({ kind: 'done', id: m.id } satisfies WriterReply);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    for (const m of group) port?.postMessage({ kind: 'failed', id: m.id, message } satisfies WriterReply);
  }
}

port.on('message', (msg: WriterRequest) => {
  if (msg.kind === 'close') {
    flush();
    void dbs.env.close().finally(() => {
      port.postMessage({ kind: 'closed' } satisfies WriterReply);
      port.close();
    });
    return;
  }
  queue.push(msg);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
});
port.postMessage({ kind: 'ready' } satisfies WriterReply);
