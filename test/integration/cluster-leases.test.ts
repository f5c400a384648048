/**
 * Cluster leases on a real PostgreSQL server (ADR 0014): the LeaseStore contract, two stores acting
 * as two instances on one database.
 */
import { after, it } from 'node:test';
import { PostgresLeaseStore, PostgresSubscriptionStore } from '../../src/adapters/postgres/index.ts';
import { leaseStoreContract } from '../../src/state/leases-contract.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const started = await startPostgres();

if ('skipped' in started) {
  it('cluster leases on PostgreSQL', { skip: started.skipped }, () => {});
} else {
  const server = started as TestPostgres;
  after(() => server.stop());
  leaseStoreContract('postgres', async () => ({
    a: await PostgresLeaseStore.open(server.url),
    b: await PostgresLeaseStore.open(server.url),
    subscriptions: await PostgresSubscriptionStore.open(server.url),
    cleanup: async () => {},
  }));
}
