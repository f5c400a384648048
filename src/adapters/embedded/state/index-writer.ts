/**
 * The decision-index writer: a worker thread owned by LmdbDecisionIndex. It opens the same LMDB
 * environment (lmdb-js shares one environment between the threads of a process) and the row files,
 * and writes each group of `add()` batches through IndexStore, so that the main thread only packs
 * each batch into columns and posts it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { IndexStore } from './index-store.ts';
import { concatColumns, openDbs, type EntryColumns } from './layout.ts';
import type { WriterReply, WriterRequest } from './writer-protocol.ts';

const port = parentPort;
if (port === null) throw new Error('index-writer must run as a worker thread');

const { path, flushRows } = workerData as { path: string; flushRows?: number };
const dbs = openDbs(path);
const store = new IndexStore(dbs, path, flushRows);

// Batches that arrived while the previous group was written are written together (group commit):
// one fdatasync and one LMDB commit, so the writer speeds up as it falls behind. Each add() stays
// atomic (its rows become visible, with its checkpoint, at the one commit).
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
    const info = store.write(columns, through);
    info.group = group.map((m) => m.id);
    port?.postMessage({ kind: 'committed', info } satisfies WriterReply);
    for (const m of group) port?.postMessage({ kind: 'done', id: m.id } satisfies WriterReply);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    for (const m of group) port?.postMessage({ kind: 'failed', id: m.id, message } satisfies WriterReply);
  }
}

port.on('message', (msg: WriterRequest) => {
  if (msg.kind === 'close') {
    flush();
    store.close();
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
