/**
 * SIGKILL during BACKUP (issue 6 item 6; ADR 0014): publishers run, a backup is started through the
 * admin API, and the service is killed at a random moment while the backup is written. After each
 * restart the data directory is intact (every acknowledged publish there exactly once, at its
 * position), and the partial backup is refused by restore (BACKUP_INCOMPLETE); a backup that
 * happened to finish before the kill restores.
 *
 * CDS_TEST_SEED replays a run; CDS_TEST_BACKUP_CRASH_ITERATIONS changes the count (default 15).
 */
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCds as cds } from '../helpers/cli.ts';
import { createDecisionGenerator, mulberry32, testSeed } from '../helpers/decisions.ts';
import { cleanupTempDirs, makeTempDir, startServer, type ServerHandle } from '../helpers/server.ts';
import { checkByGet, checkByQuery, Ledger, median, startPublishers } from './load.ts';

const ITERATIONS = Number(process.env['CDS_TEST_BACKUP_CRASH_ITERATIONS'] ?? 15);
/** Backup pace: 1 MiB/s, so that copying the log (hundreds of KB and growing) takes a while. */
const PACE = 1 << 20;
const SERVER_ENV = { CDS_RATE_REQUESTS_PER_SECOND: '1000000', CDS_LOG_LEVEL: 'warn' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test(
  'SIGKILL during a backup: the data directory is intact, the partial backup is refused',
  { timeout: 600_000 },
  async (t) => {
    const seed = testSeed('backup-crash');
    const rand = mulberry32(seed);
    const dataDir = makeTempDir('cds-backup-crash-');
    const backups = makeTempDir('cds-backup-crash-out-');
    const ledger = new Ledger();
    const restartMs: number[] = [];
    let partial = 0;
    let finished = 0;
    let server: ServerHandle = await startServer({ dataDir, env: SERVER_ENV });
    const adminKey = server.adminKey;
    const where = (i: number) => `seed ${seed}, iteration ${i}, data dir ${dataDir}`;
    try {
      for (let i = 0; i < ITERATIONS; i++) {
        const gen = createDecisionGenerator({ seed: (seed + i) >>> 0, idPrefix: `b${i}`, portfolios: 40 });
        const pubs = startPublishers({
          url: server.url,
          key: adminKey,
          gen,
          concurrency: 32,
          batchShare: 0.5,
          maxBatch: 16,
        });
        await sleep(300 + Math.floor(rand() * 500));
        const target = join(backups, `b${i}`);
        const res = await fetch(`${server.url}/v1/admin/backups`, {
          method: 'POST',
          headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
          // Paced (as an operator spares a loaded disk), so that the kill finds it under way.
          body: JSON.stringify({ path: target, maxBytesPerSecond: PACE }),
        });
        assert.equal(res.status, 202, `${await res.text()}; ${where(i)}`);
        // Killed at a random moment while the backup is written.
        const delay = Math.floor(rand() * 400);
        if (delay > 0) await sleep(delay);
        await server.kill();
        const records = await pubs.stop();
        ledger.add(records);
        const complete = existsSync(join(target, 'manifest.json'));
        // Killed right after the 202, the backup may not have made its directory yet.
        const started = existsSync(target);

        server = await startServer({ dataDir, env: SERVER_ENV, adminKey });
        restartMs.push(server.startMs);
        const got = await checkByGet(server.url, adminKey, records, ledger);
        assert.deepEqual(ledger.problems.slice(0, 20), [], where(i));

        const restored = join(backups, `r${i}`);
        const r = await cds('restore', '--from', target, '--data-dir', restored);
        if (complete) {
          finished++;
          assert.equal(r.code, 0, `a finished backup did not restore: ${r.err}; ${where(i)}`);
        } else {
          partial++;
          assert.equal(r.code, 2, `${r.err}; ${where(i)}`);
          assert.match(
            r.err,
            started
              ? /BACKUP_INCOMPLETE: .* has no manifest\.json: the backup did not finish/
              : /NOT_FOUND: no backup directory/,
            where(i),
          );
          assert.equal(existsSync(restored), false, where(i));
        }
        t.diagnostic(
          `#${i} killed ${delay} ms into the backup (${complete ? 'it had finished' : started ? 'partial, refused' : 'before its first file'}); ` +
            `${records.length} publishes (acked ${got.acked}); restart ${server.startMs.toFixed(0)} ms`,
        );
        rmSync(target, { recursive: true, force: true });
        rmSync(restored, { recursive: true, force: true });
      }
      await checkByQuery(server.url, adminKey, ledger);
      assert.deepEqual(ledger.problems.slice(0, 20), [], `seed ${seed}: after the last restart`);
      // The directory still backs up and restores after all those kills.
      const last = join(backups, 'last');
      const b = await cds('backup', '--to', last, '--url', server.url, '--key', adminKey);
      assert.equal(b.code, 0, b.err);
      const r = await cds('restore', '--from', last, '--data-dir', join(backups, 'last-restored'));
      assert.equal(r.code, 0, r.err);
      t.diagnostic(
        `${ITERATIONS} SIGKILLs during backups (${partial} partial and refused, ${finished} finished first); ` +
          `restart ms: median ${median(restartMs).toFixed(0)}, max ${Math.max(...restartMs).toFixed(0)}; ` +
          `acknowledged ${ledger.acked.size}`,
      );
      assert.ok(
        partial >= Math.ceil(ITERATIONS / 2),
        `only ${partial} of ${ITERATIONS} kills hit a running backup; ${where(0)}`,
      );
    } finally {
      await server.kill();
    }
    cleanupTempDirs();
  },
);
