/** The open streams of the gRPC server, so that shutdown can end each with a reconnect-elsewhere status. */
import type { CdsError } from '../../errors/index.ts';

/** Registers a stream's ending function; returns its unregistration. */
export class StreamRegistry {
  readonly #open = new Set<(e: CdsError) => void>();

  /** Adds a stream; `end` is called once at shutdown. */
  add(end: (e: CdsError) => void): () => void {
    this.#open.add(end);
    return () => this.#open.delete(end);
  }

  /** Open streams. */
  get size(): number {
    return this.#open.size;
  }

  /** Ends every stream with the error. */
  endAll(e: CdsError): void {
    const all = [...this.#open];
    this.#open.clear();
    for (const end of all) end(e);
  }
}
