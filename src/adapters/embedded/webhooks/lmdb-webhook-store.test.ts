/** The embedded WebhookStore passes the port's contract. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { webhookStoreContract } from '../../../state/webhooks-contract.ts';
import { LmdbWebhookStore } from './lmdb-webhook-store.ts';

webhookStoreContract('lmdb', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-webhooks-'));
  return {
    store: LmdbWebhookStore.open(dir),
    reopen: async () => LmdbWebhookStore.open(dir),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
