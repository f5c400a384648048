/** The embedded LedgerStore passes the port's contract, and the ledger's retention applies to it. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ledgerRetentionCases, ledgerStoreContract, type LedgerContractSubject } from './contract.ts';
import { LmdbLedgerStore } from './lmdb-store.ts';

async function open(): Promise<LedgerContractSubject> {
  const dir = mkdtempSync(join(tmpdir(), 'cds-ledger-'));
  return {
    store: LmdbLedgerStore.open(dir),
    reopen: async () => LmdbLedgerStore.open(dir),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

ledgerStoreContract('lmdb', open);
ledgerRetentionCases('lmdb', open);
