/**
 * Schema migrations (STYLE habit 8, the bullmq anchor): numbered, append-only files
 * `migrations/NNNN_name.sql`, applied at open under a session advisory lock (so that instances
 * starting together apply each one exactly once), each in its own transaction together with its row
 * in `cds_schema_migrations`. Before anything is applied the recorded history is checked against the
 * files: a database migrated by a newer cds, or a migration file edited after it was applied, is
 * refused and nothing is changed.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { PoolClient } from 'pg';
import { CdsError } from '../../errors/index.ts';

/** One migration file. */
export interface Migration {
  /** The NNNN of its name. */
  readonly version: number;
  /** The file name. */
  readonly name: string;
  readonly sql: string;
  /** sha256 (hex) of the file's bytes. */
  readonly checksum: string;
}

/** The advisory lock key of migrations (an arbitrary constant: "cds-migr" in ASCII). */
export const MIGRATION_LOCK_KEY = 0x6364_732d_6d69_6772n;

const FILE_NAME = /^(\d{4})_[a-z0-9_]+\.sql$/;

/** The migration files in `dir` (this module's `migrations/` by default), ascending by version. */
export function loadMigrations(dir = fileURLToPath(new URL('./migrations/', import.meta.url))): Migration[] {
  const out: Migration[] = [];
  for (const name of readdirSync(dir).sort()) {
    const m = FILE_NAME.exec(name);
    if (m === null) continue;
    const bytes = readFileSync(`${dir}/${name}`);
    out.push({
      version: Number(m[1]),
      name,
      sql: bytes.toString('utf8'),
      checksum: createHash('sha256').update(bytes).digest('hex'),
    });
  }
  out.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new CdsError(
        'INTERNAL',
        `migration files must be numbered 1, 2, 3, ...: found ${m.name} at ${i + 1}`,
      );
  });
  return out;
}

/** What `migrate` did. */
export interface MigrationResult {
  /** Versions applied by this call (empty when the schema was already current). */
  readonly applied: number[];
  /** The schema version now. */
  readonly version: number;
}

/**
 * Brings the database to the newest migration. Holds the advisory lock for the whole check-and-apply,
 * so that concurrent callers wait and then find nothing left to do.
 */
export async function migrate(
  client: PoolClient,
  migrations: readonly Migration[],
): Promise<MigrationResult> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS cds_schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
      'SELECT version, name, checksum FROM cds_schema_migrations ORDER BY version',
    );
    checkHistory(rows, migrations);
    const applied: number[] = [];
    const done = new Set(rows.map((r) => r.version));
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query(
          'INSERT INTO cds_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)',
          [m.version, m.name, m.checksum],
        );
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        throw e instanceof CdsError
          ? e
          : new CdsError(
              'INTERNAL',
              `migration ${m.name} failed and was rolled back: ${(e as Error).message}`,
              {
                cause: e,
              },
            );
      }
      applied.push(m.version);
    }
    return { applied, version: migrations.length };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]).catch(() => {});
  }
}

/** Refuses a recorded history this code cannot run on (see the module comment). */
function checkHistory(
  rows: readonly { version: number; name: string; checksum: string }[],
  migrations: readonly Migration[],
): void {
  const codeVersion = migrations.length;
  const dbVersion = rows.reduce((max, r) => Math.max(max, r.version), 0);
  if (dbVersion > codeVersion)
    throw new CdsError(
      'CONFIG_INVALID',
      `the PostgreSQL schema is at version ${dbVersion}, newer than this cds build's newest migration ` +
        `(version ${codeVersion}): run a cds release that knows version ${dbVersion}; nothing was migrated`,
      { details: { reason: 'schema_newer', databaseVersion: dbVersion, codeVersion } },
    );
  for (const r of rows) {
    const m = migrations[r.version - 1];
    if (m === undefined) continue;
    if (m.checksum !== r.checksum)
      throw new CdsError(
        'CONFIG_INVALID',
        `migration ${m.name} was edited after it was applied to this database (recorded checksum ` +
          `${r.checksum.slice(0, 12)}..., file ${m.checksum.slice(0, 12)}...): migrations are append-only, ` +
          'add a new numbered file instead; nothing was migrated',
        {
          details: {
            reason: 'migration_edited',
            version: r.version,
            recordedChecksum: r.checksum,
            fileChecksum: m.checksum,
          },
        },
      );
  }
}
