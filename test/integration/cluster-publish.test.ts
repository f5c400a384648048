/**
 * Idempotent publish across instances (DESIGN 6; ADR 0015): two instances on one PostgreSQL database
 * and one shared log (test/helpers/cluster.ts). A decisionId+revision is reserved in PostgreSQL before
 * the append, so it is stored once whichever instance gets it; a reservation whose instance died is
 * reconciled against the log instead of blocking a retry.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { SegmentLog } from '../../src/adapters/embedded/log/index.ts';
import { toRecord } from '../../src/ingest/record.ts';
import { request, shared, startInstance, type Instance } from '../helpers/cluster.ts';
import { makeDecision } from '../helpers/decisions.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const decision = (decisionId: string, overrides: Record<string, unknown> = {}) =>
  makeDecision(0, { decisionId, portfolioId: 'pf-pub', expiresAt: undefined, ...overrides });

const started = await startPostgres();

if ('skipped' in started) {
  it('idempotent publish across instances', { skip: started.skipped }, () => {});
} else {
  const db = started as TestPostgres;
  describe('idempotent publish across two instances', () => {
    let log: SegmentLog;
    let logDir: string;
    let a: Instance;
    let b: Instance;
    let sql: pg.Client;
    const records = () => log.extents().reduce((n, e) => n + e.next - e.first, 0);

    before(async () => {
      logDir = mkdtempSync(join(tmpdir(), 'cds-shared-log-'));
      log = await SegmentLog.open(logDir);
      a = await startInstance(db.url, shared(log), { leaseMs: 3000, renewMs: 500 });
      b = await startInstance(db.url, shared(log), { leaseMs: 3000, renewMs: 500 });
      sql = new pg.Client({ connectionString: db.url });
      await sql.connect();
    });
    after(async () => {
      await sql?.end();
      await a?.app.close();
      await b?.app.close();
      await log?.close();
      for (const d of [a?.dataDir, b?.dataDir, logDir]) if (d) rmSync(d, { recursive: true, force: true });
      await db.stop();
    });

    it('the same decision through both instances at once is stored once; both answers name its position', async () => {
      const before = records();
      for (let i = 0; i < 20; i++) {
        const d = decision(`both-${i}`);
        const [x, y] = await Promise.all([
          request(a, 'POST', '/v1/decisions', d),
          request(b, 'POST', '/v1/decisions', d),
        ]);
        assert.equal(x.status, 200, JSON.stringify(x.body));
        assert.equal(y.status, 200, JSON.stringify(y.body));
        assert.equal(x.body.position, y.body.position);
        assert.deepEqual([x.body.duplicate, y.body.duplicate].sort(), [false, true]);
      }
      assert.equal(records() - before, 20);
      // Each instance indexes the other's records between its own (the shared log's gaps).
      await a.app.ctx.publisher.indexer.idle();
      await b.app.ctx.publisher.indexer.idle();
      const { rows } = await sql.query(
        "SELECT count(*)::int AS n FROM cds_decisions WHERE decision_id LIKE 'both-%'",
      );
      assert.equal(rows[0].n, 20);
    });

    it('a lower revision with another body through the other instance is refused (409) at once', async () => {
      assert.equal(
        (await request(a, 'POST', '/v1/decisions', decision('amend', { revision: 2 }))).status,
        200,
      );
      const r = await request(b, 'POST', '/v1/decisions', decision('amend', { revision: 1, quantity: '7' }));
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'REVISION_CONFLICT');
    });

    it("a dead instance's reservation that was never appended does not block a retry", async () => {
      const d = decision('orphan-1');
      const p = log.partitionOf('pf-pub');
      await sql.query(
        `INSERT INTO cds_publish_reservations (decision_id, revision, owner, partition, from_offset, received_at, reserved_at)
         VALUES ($1, 1, 'dead-instance', $2, $3, $4, clock_timestamp() - interval '10 minutes')`,
        [d.decisionId, p, log.extents()[p]?.next, Date.now() - 600_000],
      );
      const before = records();
      const r = await request(b, 'POST', '/v1/decisions', d);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.duplicate, false);
      assert.equal(records() - before, 1);
    });

    it("a dead instance's reservation whose append landed: the retry answers it as a duplicate, and it is indexed", async () => {
      const d = decision('orphan-2');
      const p = log.partitionOf('pf-pub');
      const from = log.extents()[p]?.next as number;
      const receivedAt = Date.now() - 600_000;
      await sql.query(
        `INSERT INTO cds_publish_reservations (decision_id, revision, owner, partition, from_offset, received_at, reserved_at)
         VALUES ($1, 1, 'dead-instance', $2, $3, $4, clock_timestamp() - interval '10 minutes')`,
        [d.decisionId, p, from, receivedAt],
      );
      // The dead instance's append (it died before indexing it).
      const [at] = await log.append([
        toRecord(d, { topics: ['decisions.equity.pf-pub'], key: 'pf-pub', priority: 5 }, receivedAt),
      ]);
      const r = await request(a, 'POST', '/v1/decisions', d);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.duplicate, true);
      assert.equal(r.body.position, `${at?.partition}:${at?.offset}`);
      const g = await request(b, 'GET', `/v1/decisions/${d.decisionId}`);
      assert.equal(g.status, 200, JSON.stringify(g.body));
      const { rows } = await sql.query(
        'SELECT count(*)::int AS n FROM cds_publish_reservations WHERE decision_id = $1',
        [d.decisionId],
      );
      assert.equal(rows[0].n, 0, 'the reservation was settled');
    });
  });
}
