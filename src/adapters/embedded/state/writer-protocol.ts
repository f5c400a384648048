/** Messages between LmdbDecisionIndex (main thread) and its index-writer worker. */
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

/** From the writer to the main thread; `done` is sent only after the transaction committed durably. */
export type WriterReply =
  | { readonly kind: 'ready' }
  | { readonly kind: 'done'; readonly id: number }
  | { readonly kind: 'failed'; readonly id: number; readonly message: string }
  | { readonly kind: 'closed' };
