/** The embedded LedgerStore passes the port's contract. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ledgerStoreContract } from './contract.ts';
import { LmdbLedgerStore } from './lmdb-store.ts';

ledgerStoreContract('lmdb', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-ledger-'));
  return {
    store: LmdbLedgerStore.open(dir),
    reopen: async () => LmdbLedgerStore.open(dir),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
