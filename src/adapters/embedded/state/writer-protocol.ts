/** Messages between LmdbDecisionIndex (main thread) and its index-writer worker. */
import type { CommitInfo } from './index-store.ts';
import type { EntryColumns } from './layout.ts';

/** From the main thread to the writer. */
export type WriterRequest =
  | {
      readonly kind: 'add';
      readonly id: number;
      readonly columns: EntryColumns;
      readonly through: Readonly<Record<number, number>>;
    }
  | { readonly kind: 'close' };

/**
 * From the writer to the main thread; `committed` (what the commit changed) precedes the `done` of
 * each add in it, and is sent only after the rows were fdatasync'd and the transaction committed.
 */
export type WriterReply =
  | { readonly kind: 'ready' }
  | { readonly kind: 'committed'; readonly info: CommitInfo }
  | { readonly kind: 'done'; readonly id: number }
  | { readonly kind: 'failed'; readonly id: number; readonly message: string }
  | { readonly kind: 'closed' };
