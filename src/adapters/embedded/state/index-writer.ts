/**
 * The decision-index writer: a worker thread owned by LmdbDecisionIndex. It opens the same LMDB
 * environment (lmdb-js shares one environment between the threads of a process) and writes each
 * `add()` batch in one synchronous transaction, so the B-tree work of an entry and its six secondary
 * keys (about 20 us per entry measured on the main thread) is off the main thread, which only packs
 * the batch into columns and posts it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDbs, writeBatch } from './layout.ts';
import type { WriterReply, WriterRequest } from './writer-protocol.ts';

const port = parentPort;
if (port === null) throw new Error('index-writer must run as a worker thread');

const dbs = openDbs((workerData as { path: string }).path);

port.on('message', (msg: WriterRequest) => {
  if (msg.kind === 'close') {
    void dbs.env.close().finally(() => {
      port.postMessage({ kind: 'closed' } satisfies WriterReply);
      port.close();
    });
    return;
  }
  try {
    dbs.env.transactionSync(() => writeBatch(dbs, msg.columns, msg.through));
    port.postMessage({ kind: 'done', id: msg.id } satisfies WriterReply);
  } catch (e) {
    port.postMessage({
      kind: 'failed',
      id: msg.id,
      message: e instanceof Error ? e.message : String(e),
    } satisfies WriterReply);
  }
});
port.postMessage({ kind: 'ready' } satisfies WriterReply);
