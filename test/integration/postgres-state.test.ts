/**
 * The PostgreSQL StateStore against a real server (test/helpers/postgres.ts): the StateStore contract
 * unchanged, then what only a shared database has: migrations under concurrency, schema-version and
 * edited-migration refusal, connection errors, one audit chain from two store instances, and the
 * decision index's trim in bounded transactions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PostgresStateStore, loadMigrations } from '../../src/adapters/postgres/index.ts';
import { TRIM_BATCH } from '../../src/adapters/postgres/decision-index.ts';
import { findChainBreak, type AuditRecord } from '../../src/domain/audit.ts';
import { topicMatches } from '../../src/domain/topics.ts';
import { topicPatternRegex } from '../../src/adapters/postgres/topic-regex.ts';
import { isCdsError } from '../../src/errors/index.ts';
import { stateStoreContract } from '../../src/state/contract.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';

const started = await startPostgres();
const skip = 'skipped' in started ? started.skipped : undefined;

/** A fresh database for one case (or the contract), dropped by its stop(). */
async function freshDb(): Promise<TestPostgres> {
  const db = await startPostgres();
  if ('skipped' in db) throw new Error(db.skipped);
  return db;
}

async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(text, params)).rows;
  } finally {
    await c.end();
  }
}

async function waitFor(cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

if (skip !== undefined) {
  it('PostgreSQL StateStore', { skip }, () => {});
} else {
  const server = started as TestPostgres;
  after(() => server.stop());

  stateStoreContract('postgres', async () => {
    const db = await freshDb();
    return {
      store: await PostgresStateStore.open(db.url),
      reopen: () => PostgresStateStore.open(db.url),
      cleanup: () => db.stop(),
    };
  });

  describe('PostgreSQL StateStore: what a shared database adds', () => {
    let db: TestPostgres;
    before(async () => {
      db = await freshDb();
    });
    after(() => db.stop());

    it('two opens at the same time apply each migration once', async () => {
      const fresh = await freshDb();
      try {
        const stores = await Promise.all([0, 1, 2].map(() => PostgresStateStore.open(fresh.url)));
        const rows = await sql<{ version: number }>(
          fresh.url,
          'SELECT version FROM cds_schema_migrations ORDER BY version',
        );
        assert.deepEqual(
          rows.map((r) => r.version),
          loadMigrations().map((m) => m.version),
        );
        const [head] = await sql<{ n: string }>(fresh.url, 'SELECT count(*) AS n FROM cds_audit_head');
        assert.equal(Number(head?.n), 1);
        await Promise.all(stores.map((s) => s.close()));
      } finally {
        await fresh.stop();
      }
    });

    it('a database migrated by a newer cds is refused, naming both versions, and nothing is migrated', async () => {
      const fresh = await freshDb();
      try {
        await sql(
          fresh.url,
          `CREATE TABLE cds_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
          checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
        );
        await sql(
          fresh.url,
          `INSERT INTO cds_schema_migrations (version, name, checksum) VALUES (9999, '9999_future.sql', 'x')`,
        );
        const codeVersion = loadMigrations().length;
        await assert.rejects(PostgresStateStore.open(fresh.url), (e) => {
          assert.ok(isCdsError(e, 'CONFIG_INVALID'), String(e));
          assert.match((e as Error).message, /version 9999/);
          assert.match((e as Error).message, new RegExp(`version ${codeVersion}\\b`));
          return true;
        });
        const tables = await sql(
          fresh.url,
          `SELECT 1 FROM information_schema.tables WHERE table_name = 'cds_principals'`,
        );
        assert.equal(tables.length, 0, 'no migration applied');
      } finally {
        await fresh.stop();
      }
    });

    it('a migration edited after it was applied is refused', async () => {
      const fresh = await freshDb();
      try {
        await (await PostgresStateStore.open(fresh.url)).close();
        await sql(fresh.url, `UPDATE cds_schema_migrations SET checksum = 'edited' WHERE version = 1`);
        await assert.rejects(PostgresStateStore.open(fresh.url), (e) => {
          assert.ok(isCdsError(e, 'CONFIG_INVALID'), String(e));
          assert.match((e as Error).message, /0001_\w+\.sql was edited after it was applied/);
          return true;
        });
      } finally {
        await fresh.stop();
      }
    });

    it('a new migration file is applied on the next open, and only it', async () => {
      const fresh = await freshDb();
      try {
        await (await PostgresStateStore.open(fresh.url)).close();
        const base = loadMigrations();
        const extra = {
          version: base.length + 1,
          name: `${String(base.length + 1).padStart(4, '0')}_test_extra.sql`,
          sql: 'CREATE TABLE cds_test_extra (x integer)',
          checksum: 'c'.repeat(64),
        };
        await (await PostgresStateStore.open(fresh.url, { migrations: [...base, extra] })).close();
        const rows = await sql<{ version: number }>(
          fresh.url,
          'SELECT version FROM cds_schema_migrations ORDER BY version',
        );
        assert.deepEqual(
          rows.map((r) => r.version),
          [...base, extra].map((m) => m.version),
        );
        // And the older build now refuses the database.
        await assert.rejects(PostgresStateStore.open(fresh.url), (e) => isCdsError(e, 'CONFIG_INVALID'));
      } finally {
        await fresh.stop();
      }
    });

    it('a failing migration is rolled back whole and not recorded', async () => {
      const fresh = await freshDb();
      try {
        const base = loadMigrations();
        const bad = {
          version: base.length + 1,
          name: '9_bad.sql',
          sql: 'CREATE TABLE cds_half (x int); SELECT 1/0',
          checksum: 'b'.repeat(64),
        };
        await assert.rejects(
          PostgresStateStore.open(fresh.url, { migrations: [...base, bad] }),
          /9_bad\.sql failed/,
        );
        assert.equal(
          (await sql(fresh.url, `SELECT 1 FROM information_schema.tables WHERE table_name = 'cds_half'`))
            .length,
          0,
        );
        const rows = await sql<{ version: number }>(fresh.url, 'SELECT version FROM cds_schema_migrations');
        assert.equal(rows.length, base.length);
      } finally {
        await fresh.stop();
      }
    });

    it('a malformed URL is CONFIG_INVALID', async () => {
      for (const url of ['not a url', 'mysql://u@127.0.0.1/x', 'postgres://']) {
        await assert.rejects(PostgresStateStore.open(url), (e) => {
          assert.ok(isCdsError(e, 'CONFIG_INVALID'), `${url}: ${String(e)}`);
          assert.match((e as Error).message, /PostgreSQL URL/);
          return true;
        });
      }
    });

    it('an unreachable server is STORAGE_UNAVAILABLE (retriable), naming where', async () => {
      const u = new URL(db.url);
      u.port = '1'; // nothing listens on port 1
      await assert.rejects(PostgresStateStore.open(u.toString()), (e) => {
        assert.ok(isCdsError(e, 'STORAGE_UNAVAILABLE'), String(e));
        assert.equal((e as { retriable: boolean }).retriable, true);
        assert.match((e as Error).message, /cannot reach PostgreSQL at 127\.0\.0\.1:1\//);
        return true;
      });
    });

    it(
      'a wrong password is CONFIG_INVALID saying the credentials were refused',
      {
        skip:
          server.passwordUrl === undefined
            ? 'an external server (CDS_TEST_POSTGRES_URL): the harness does not control its authentication'
            : false,
      },
      async () => {
        if (db.passwordUrl === undefined) return;
        const good = await PostgresStateStore.open(db.passwordUrl);
        await good.close();
        const u = new URL(db.passwordUrl);
        u.password = 'Sekr3t-not-it';
        await assert.rejects(PostgresStateStore.open(u.toString()), (e) => {
          assert.ok(isCdsError(e, 'CONFIG_INVALID'), String(e));
          assert.match((e as Error).message, /refused the credentials/);
          assert.doesNotMatch((e as Error).message, /Sekr3t/, 'the password is never in the message');
          return true;
        });
      },
    );

    it('a database that does not exist is CONFIG_INVALID', async () => {
      const u = new URL(db.url);
      u.pathname = '/cds_no_such_database';
      await assert.rejects(PostgresStateStore.open(u.toString()), (e) => {
        assert.ok(isCdsError(e, 'CONFIG_INVALID'), String(e));
        assert.match((e as Error).message, /cds_no_such_database/);
        return true;
      });
    });

    it('two store instances appending concurrently form one intact audit chain', async () => {
      const [a, b] = await Promise.all([PostgresStateStore.open(db.url), PostgresStateStore.open(db.url)]);
      try {
        const ev = (s: string) => ({ actor: 'system', action: 'test.concurrent', target: s, details: { s } });
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            (i % 2 === 0 ? a : b).audit.append(
              Array.from({ length: 1 + (i % 4) }, (_, j) => ev(`${i}.${j}`)),
            ),
          ),
        );
        const mine = results.flat();
        assert.equal(new Set(mine.map((r) => r.seq)).size, mine.length);
        const all: AuditRecord[] = [];
        for (;;) {
          const page = await a.audit.list(all.at(-1)?.seq ?? 0, 100);
          if (page.length === 0) break;
          all.push(...page);
        }
        assert.equal(findChainBreak(all), undefined);
        assert.deepEqual(await b.audit.last(), all.at(-1));
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it('two instances indexing the same batches concurrently store each revision once; checkpoints only move forward', async () => {
      const [a, b] = await Promise.all([PostgresStateStore.open(db.url), PostgresStateStore.open(db.url)]);
      try {
        const u = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
        const part = 900_000 + Math.floor(Math.random() * 100_000);
        const batches = Array.from({ length: 10 }, (_, k) =>
          Array.from({ length: 200 }, (_, i) => ({
            decisionId: `cc-${u}-${(k * 200 + i) % 1500}`,
            revision: 1 + Math.floor((k * 200 + i) / 1500),
            partition: part,
            offset: k * 200 + i,
            receivedAt: 3_000_000_000_000 + k * 200 + i,
            portfolioId: `pf-${u}`,
            strategyId: 'st',
            symbol: 'SYM',
            assetClass: 'equity',
            type: 'trade',
            verdict: 'approved',
            priority: 5,
            topics: [`decisions.equity.pf-${u}`],
          })),
        );
        const before = await a.decisions.counts();
        await Promise.all(
          batches.flatMap((batch, k) => [
            a.decisions.add(batch, { [part]: (k + 1) * 200 }),
            b.decisions.add([...batch].reverse(), { [part]: (k + 1) * 200 }),
          ]),
        );
        const after = await b.decisions.counts();
        assert.deepEqual(after, { revisions: before.revisions + 2000, decisions: before.decisions + 1500 });
        assert.equal((await a.decisions.checkpoint())[part], 2000);
        await b.decisions.add([], { [part]: 5 });
        assert.equal(
          (await a.decisions.checkpoint())[part],
          2000,
          'an older checkpoint does not move it back',
        );
        const page = await a.decisions.query({ portfolioId: `pf-${u}` }, { limit: 2000, order: 'asc' });
        assert.equal(page.entries.length, 1500, 'latest revisions only');
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it('topic pattern regexes match in PostgreSQL exactly what topicMatches matches', async () => {
      const topics = ['a', 'a.b', 'a.b.c', 'a.x.c', 'b.b.c', 'a-1.b_2', 'ab.c', 'a.bc', 'x.a.b', 'a.b.c.d'];
      const patterns = [
        'a',
        '>',
        '*',
        'a.>',
        'a.*',
        '*.b',
        'a.*.c',
        '*.*.*',
        'a.b.>',
        'a-1.*',
        '*.>',
        'a.b',
        'x.>',
      ];
      const rows = await sql<{ p: string; t: string; m: boolean }>(
        db.url,
        'SELECT p, t, t ~ r AS m FROM unnest($1::text[], $2::text[]) AS x(p, r), unnest($3::text[]) AS t',
        [patterns, patterns.map(topicPatternRegex), topics],
      );
      assert.equal(rows.length, patterns.length * topics.length);
      for (const r of rows) assert.equal(r.m, topicMatches(r.p, r.t), `${r.p} vs ${r.t}`);
    });

    it('a unique violation maps to ALREADY_EXISTS and a dropped connection to STORAGE_UNAVAILABLE', async () => {
      const store = await PostgresStateStore.open(db.url, { applicationName: 'cds-kill-test' });
      try {
        const p = {
          id: `key_${Date.now()}`,
          name: 'n',
          scopes: [],
          keyHash: 'h'.repeat(64),
          keyPrefix: 'x',
          createdAt: new Date().toISOString(),
        };
        await store.principals.create(p);
        await assert.rejects(store.principals.create({ ...p, id: `${p.id}_2` }), (e) =>
          isCdsError(e, 'ALREADY_EXISTS'),
        );
        await store.meta.set('k', 'v');
        // Hold the audit head row in another session, so that an append waits on it; then kill the
        // append's backend under it.
        const holder = new pg.Client({ connectionString: db.url });
        await holder.connect();
        try {
          await holder.query('BEGIN');
          await holder.query('SELECT * FROM cds_audit_head FOR UPDATE');
          const pending = store.audit.append([
            { actor: 'system', action: 'test.kill', target: 'x', details: {} },
          ]);
          const outcome = pending.then(
            () => undefined,
            (e: unknown) => e,
          );
          await waitFor(async () => {
            const rows = await holder.query(
              `SELECT 1 FROM pg_stat_activity WHERE application_name = 'cds-kill-test' AND wait_event_type = 'Lock'`,
            );
            return rows.rowCount === 1;
          });
          await holder.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cds-kill-test' AND wait_event_type = 'Lock'`,
          );
          const e = await outcome;
          assert.ok(isCdsError(e, 'STORAGE_UNAVAILABLE'), String(e));
          await holder.query('ROLLBACK');
        } finally {
          await holder.end();
        }
        assert.equal(await store.meta.get('k'), 'v', 'the pool recovers with a new connection');
      } finally {
        await store.close();
      }
    });

    it('trim deletes in batches of TRIM_BATCH rows, each in a transaction of its own, and keeps the rest', async () => {
      const fresh = await freshDb();
      const store = await PostgresStateStore.open(fresh.url);
      try {
        const n = 2 * TRIM_BATCH + 500;
        const entries = Array.from({ length: n + 100 }, (_, o) => ({
          decisionId: `trim-${o}`,
          revision: 1,
          partition: 3,
          offset: o,
          receivedAt: 1_700_000_000_000 + o,
          portfolioId: 'pf',
          strategyId: 'st',
          symbol: 'S',
          assetClass: 'fx',
          type: 'trade',
          verdict: 'approved',
          priority: 1,
          topics: ['decisions.fx.pf'],
        }));
        await store.decisions.add(entries, { 3: n + 100 });
        // Each DELETE statement notes its transaction.
        await sql(
          fresh.url,
          `CREATE TABLE trim_log (tx bigint, n integer);
           CREATE FUNCTION trim_note() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO trim_log SELECT txid_current(), count(*) FROM gone; RETURN NULL; END $$;
           CREATE TRIGGER trim_note AFTER DELETE ON cds_decisions REFERENCING OLD TABLE AS gone
             FOR EACH STATEMENT EXECUTE FUNCTION trim_note();`,
        );
        await store.decisions.trim(3, n);
        const log = await sql<{ tx: string; n: number }>(fresh.url, 'SELECT tx, n FROM trim_log');
        assert.deepEqual(
          log.map((r) => r.n),
          [TRIM_BATCH, TRIM_BATCH, 500],
        );
        assert.equal(new Set(log.map((r) => r.tx)).size, 3, 'three transactions');
        const [left] = await sql<{ n: number; lo: number }>(
          fresh.url,
          'SELECT count(*)::integer AS n, min("offset")::integer AS lo FROM cds_decisions',
        );
        assert.deepEqual(left, { n: 100, lo: n });
        assert.equal(await store.decisions.get('trim-0'), undefined);
        assert.equal((await store.decisions.get(`trim-${n}`))?.offset, n);
      } finally {
        await store.close();
        await fresh.stop();
      }
    });
  });
}
