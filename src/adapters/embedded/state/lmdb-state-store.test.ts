import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stateStoreContract } from '../../../state/contract.ts';
import { LmdbStateStore } from './lmdb-state-store.ts';

stateStoreContract('embedded LMDB', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-state-'));
  return {
    store: await LmdbStateStore.open(dir),
    reopen: () => LmdbStateStore.open(dir),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
