/** The PostgreSQL RuleStore passes the port's contract unchanged, against a real server. */
import { it } from 'node:test';
import { PostgresRuleStore } from '../../src/adapters/postgres/index.ts';
import { ruleStoreContract } from '../../src/state/rules-contract.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const db = await startPostgres();

if ('skipped' in db) {
  it('RuleStore contract: postgres', { skip: db.skipped }, () => {});
} else {
  const server = db as TestPostgres;
  ruleStoreContract('postgres', async () => ({
    store: await PostgresRuleStore.open(server.url),
    reopen: () => PostgresRuleStore.open(server.url),
    cleanup: () => server.stop(),
  }));
}
