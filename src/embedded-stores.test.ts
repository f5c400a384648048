/** The one list of embedded stores: each opens in the folder it is backed up as; none is missed. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  EMBEDDED_FOLDERS,
  asEmbedded,
  closeEmbeddedStores,
  embeddedBackupParts,
  openEmbeddedStores,
} from './embedded-stores.ts';

test('every embedded store opens in its own folder, and a backup copies each, the state store first', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-stores-'));
  try {
    const stores = await openEmbeddedStores(dir);
    try {
      assert.deepEqual(
        readdirSync(dir)
          .filter((f) => !f.startsWith('decision'))
          .sort(),
        [...EMBEDDED_FOLDERS].sort(),
      );
      assert.equal(asEmbedded(stores), stores);
      assert.equal(asEmbedded({ ...stores, ledger: {} }), undefined, 'one store not embedded: no backup');
      const parts = embeddedBackupParts(dir, { snapshot: () => assert.fail('not read') }, stores);
      assert.deepEqual(
        parts.envs.map((e) => e.folder),
        [...EMBEDDED_FOLDERS],
      );
      assert.equal(parts.envs[0]?.folder, 'state');
    } finally {
      await closeEmbeddedStores(stores);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
