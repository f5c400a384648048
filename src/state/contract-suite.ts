/**
 * What every store's contract suite (STYLE habit 2) does around its cases: open the adapter, run
 * each case unless the adapter skips it (with its reason), reopen the store for durability cases,
 * close and clean up at the end. Used by the webhook and ledger contracts.
 */
import { after, before, describe, it } from 'node:test';

/** A store as the suites see it: something that closes (idempotently). */
interface Closable {
  close(): Promise<void>;
}

/** What an adapter's `open` gives a suite. */
export interface ContractSubject<S extends Closable> {
  readonly store: S;
  /** Opens the same store again after the suite closed it; without it durability cases do nothing. */
  readonly reopen?: () => Promise<S>;
  readonly cleanup: () => Promise<void>;
}

/** What a suite's cases get: the store of the moment, a skip-aware `it`, and a reopen. */
export interface ContractCases<S extends Closable> {
  /** The store (another object after `reopen`). */
  readonly store: S;
  /** Registers a case, skipped when the adapter names it in `skip`. */
  test(title: string, fn: () => Promise<void>): void;
  /** Closes the store twice (close is idempotent) and opens it again; false when the adapter cannot. */
  reopen(): Promise<boolean>;
}

/** Registers a suite `title` whose cases `cases` registers; `skip` maps a case title to why it is skipped. */
export function contractSuite<S extends Closable>(
  title: string,
  open: () => Promise<ContractSubject<S>>,
  skip: Record<string, string> | undefined,
  cases: (c: ContractCases<S>) => void,
): void {
  describe(title, () => {
    let subject: ContractSubject<S> | undefined;
    let store: S | undefined;
    before(async () => {
      subject = await open();
      store = subject.store;
    });
    after(async () => {
      await store?.close();
      await subject?.cleanup();
    });
    cases({
      get store(): S {
        if (store === undefined) throw new Error('the store is not open');
        return store;
      },
      test(name, fn) {
        const reason = skip?.[name];
        it(name, reason === undefined ? {} : { skip: reason }, fn);
      },
      async reopen() {
        if (subject?.reopen === undefined || store === undefined) return false;
        await store.close();
        await store.close();
        store = await subject.reopen();
        return true;
      },
    });
  });
}
