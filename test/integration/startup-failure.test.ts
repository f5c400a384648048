/** A start that fails part-way leaves nothing held: the same data directory can be opened at once. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startTestApp } from '../helpers/app.ts';

describe('start-up failure', () => {
  it('releases the log lock and the stores when a later step fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cds-startfail-'));
    try {
      // A file where the rule store's directory belongs: start-up fails after the log (and its lock)
      // and the state store were opened.
      const blocker = join(dir, 'rules');
      writeFileSync(blocker, 'not a directory');
      await assert.rejects(startTestApp({}, dir));
      rmSync(blocker);
      const t = await startTestApp({}, dir);
      assert.equal((await t.request('GET', '/healthz')).status, 200);
      await t.close({ keep: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
