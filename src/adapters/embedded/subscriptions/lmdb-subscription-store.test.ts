/** The embedded SubscriptionStore passes the port's contract. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  STALE_LETTERS_CASE,
  STALE_TOKEN_CASE,
  subscriptionStoreContract,
} from '../../../state/subscriptions-contract.ts';
import { LmdbSubscriptionStore } from './lmdb-subscription-store.ts';

subscriptionStoreContract(
  'lmdb',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cds-subs-'));
    return {
      store: LmdbSubscriptionStore.open(dir),
      reopen: async () => LmdbSubscriptionStore.open(dir),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
  {
    skip: {
      [STALE_TOKEN_CASE]:
        'no leases: one process holds the data directory (its lock), so no other can hold a newer token',
      [STALE_LETTERS_CASE]: 'no leases (as above)',
    },
  },
);
