/** The embedded RetentionPolicyStore passes the port's contract. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { retentionStoreContract } from '../../../state/retention-contract.ts';
import { LmdbRetentionStore } from './lmdb-retention-store.ts';

retentionStoreContract('lmdb', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-retention-'));
  return {
    store: LmdbRetentionStore.open(dir),
    reopen: async () => LmdbRetentionStore.open(dir),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
