/**
 * The small stores of the PostgreSQL StateStore: principals, the audit trail, meta. Each write is one
 * statement or one transaction (see migrations/0001_state.sql for the tables).
 */
import type pg from 'pg';
import { chainNext, type AuditEvent, type AuditRecord } from '../../domain/audit.ts';
import { CdsError } from '../../errors/index.ts';
import type { AuditStore, MetaStore, Principal, PrincipalStore } from '../../state/port.ts';
import { mapPgError } from './errors.ts';
import { query, transaction } from './pool.ts';

// ---------------------------------------------------------------- principals

interface PrincipalRow {
  id: string;
  key_hash: string;
  name: string;
  scopes: string[];
  key_prefix: string;
  rate_limits: Principal['rateLimits'] | null;
  created_at: string;
  revoked_at: string | null;
}

const PRINCIPAL_COLUMNS = 'id, key_hash, name, scopes, key_prefix, rate_limits, created_at, revoked_at';

function toPrincipal(r: PrincipalRow): Principal {
  return {
    id: r.id,
    name: r.name,
    scopes: r.scopes,
    keyHash: r.key_hash,
    keyPrefix: r.key_prefix,
    ...(r.rate_limits === null ? {} : { rateLimits: r.rate_limits }),
    createdAt: r.created_at,
    ...(r.revoked_at === null ? {} : { revokedAt: r.revoked_at }),
  };
}

/** PrincipalStore over `cds_principals`. */
export class PgPrincipals implements PrincipalStore {
  constructor(private readonly pool: pg.Pool) {}

  async create(p: Principal): Promise<void> {
    try {
      await this.pool.query(
        `INSERT INTO cds_principals (${PRINCIPAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          p.id,
          p.keyHash,
          p.name,
          p.scopes,
          p.keyPrefix,
          p.rateLimits === undefined ? null : JSON.stringify(p.rateLimits),
          p.createdAt,
          p.revokedAt ?? null,
        ],
      );
    } catch (e) {
      const mapped = mapPgError(e, 'creating a principal');
      if (mapped.code !== 'ALREADY_EXISTS') throw mapped;
      const which =
        (e as { constraint?: string }).constraint === 'cds_principals_pkey' ? `id ${p.id}` : 'key hash';
      throw new CdsError('ALREADY_EXISTS', `a principal with this ${which} already exists`, { cause: e });
    }
  }

  async findByKeyHash(keyHash: string): Promise<Principal | undefined> {
    const [r] = await query<PrincipalRow>(
      this.pool,
      'reading a principal',
      `SELECT ${PRINCIPAL_COLUMNS} FROM cds_principals WHERE key_hash = $1`,
      [keyHash],
    );
    return r === undefined ? undefined : toPrincipal(r);
  }

  async get(id: string): Promise<Principal | undefined> {
    const [r] = await query<PrincipalRow>(
      this.pool,
      'reading a principal',
      `SELECT ${PRINCIPAL_COLUMNS} FROM cds_principals WHERE id = $1`,
      [id],
    );
    return r === undefined ? undefined : toPrincipal(r);
  }

  async list(): Promise<Principal[]> {
    const rows = await query<PrincipalRow>(
      this.pool,
      'listing principals',
      `SELECT ${PRINCIPAL_COLUMNS} FROM cds_principals ORDER BY created_at, id`,
    );
    return rows.map(toPrincipal);
  }

  async revoke(id: string, at: string): Promise<Principal | undefined> {
    // COALESCE keeps the first revocation time; RETURNING gives the row as it now is.
    const [r] = await query<PrincipalRow>(
      this.pool,
      'revoking a principal',
      `UPDATE cds_principals SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING ${PRINCIPAL_COLUMNS}`,
      [id, at],
    );
    return r === undefined ? undefined : toPrincipal(r);
  }
}

// ---------------------------------------------------------------- audit

interface AuditRow {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  details: string;
  prev_hash: string;
  hash: string;
}

function toAuditRecord(r: AuditRow): AuditRecord {
  return {
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    action: r.action,
    target: r.target,
    details: JSON.parse(r.details) as AuditRecord['details'],
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** AuditStore over `cds_audit`, serialized by the `cds_audit_head` row lock. */
export class PgAudit implements AuditStore {
  constructor(private readonly pool: pg.Pool) {}

  async append(events: readonly AuditEvent[]): Promise<AuditRecord[]> {
    if (events.length === 0) return [];
    return transaction(this.pool, 'appending to the audit trail', async (c) => {
      // The head row lock serializes appends from every connection of every instance, and the chain
      // is computed from the head as it is after the previous append committed.
      const head = await c.query<{ seq: number; hash: string }>(
        'SELECT seq, hash FROM cds_audit_head WHERE id = 1 FOR UPDATE',
      );
      let prev: { seq: number; hash: string } | undefined = head.rows[0];
      if (prev === undefined) throw new CdsError('DATA_CORRUPT', 'the audit chain head row is missing');
      if (prev.seq === 0) prev = undefined;
      const now = new Date();
      const out: AuditRecord[] = [];
      for (const ev of events) {
        const r = chainNext(prev, ev, now);
        out.push(r);
        prev = r;
      }
      await c.query(
        `INSERT INTO cds_audit (seq, at, actor, action, target, details, prev_hash, hash)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])`,
        [
          out.map((r) => r.seq),
          out.map((r) => r.at),
          out.map((r) => r.actor),
          out.map((r) => r.action),
          out.map((r) => r.target),
          out.map((r) => JSON.stringify(r.details)),
          out.map((r) => r.prevHash),
          out.map((r) => r.hash),
        ],
      );
      const last = out[out.length - 1] as AuditRecord;
      await c.query('UPDATE cds_audit_head SET seq = $1, hash = $2 WHERE id = 1', [last.seq, last.hash]);
      return out;
    });
  }

  async list(afterSeq: number, limit: number): Promise<AuditRecord[]> {
    if (limit <= 0) return [];
    const rows = await query<AuditRow>(
      this.pool,
      'reading the audit trail',
      'SELECT * FROM cds_audit WHERE seq > $1 ORDER BY seq LIMIT $2',
      [afterSeq, limit],
    );
    return rows.map(toAuditRecord);
  }

  async last(): Promise<AuditRecord | undefined> {
    const [r] = await query<AuditRow>(
      this.pool,
      'reading the audit trail',
      'SELECT * FROM cds_audit ORDER BY seq DESC LIMIT 1',
    );
    return r === undefined ? undefined : toAuditRecord(r);
  }
}

// ---------------------------------------------------------------- meta

/** MetaStore over `cds_meta`. */
export class PgMeta implements MetaStore {
  constructor(private readonly pool: pg.Pool) {}

  async get(key: string): Promise<string | undefined> {
    const [r] = await query<{ value: string }>(
      this.pool,
      'reading meta',
      'SELECT value FROM cds_meta WHERE key = $1',
      [key],
    );
    return r?.value;
  }

  async set(key: string, value: string): Promise<void> {
    await query(
      this.pool,
      'writing meta',
      'INSERT INTO cds_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value',
      [key, value],
    );
  }
}
