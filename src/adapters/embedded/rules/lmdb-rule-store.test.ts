/** The embedded RuleStore passes the port's contract. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ruleStoreContract } from '../../../state/rules-contract.ts';
import { LmdbRuleStore } from './lmdb-rule-store.ts';

ruleStoreContract('lmdb', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-rules-'));
  return {
    store: LmdbRuleStore.open(dir),
    reopen: async () => LmdbRuleStore.open(dir),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
