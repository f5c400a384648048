/**
 * The audit chain (DESIGN 5 and 8): each record carries the hash of the one before, so that an
 * edited, removed or reordered record breaks the chain. Adapters store records; this module alone
 * computes and checks the hashes, so every adapter chains the same way.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical.ts';

/** What a caller audits. */
export interface AuditEvent {
  /** Principal id (or `system`, or `anonymous` for unauthenticated denied access). */
  readonly actor: string;
  /** Dotted action name, for example `principal.create`, `access.denied`. */
  readonly action: string;
  /** What it acted on (a principal id, a route, a subscription name). */
  readonly target: string;
  /** Small JSON details (never secrets). */
  readonly details: Readonly<Record<string, unknown>>;
}

/** A stored audit record. */
export interface AuditRecord extends AuditEvent {
  /** 1, 2, 3, ... without gaps. */
  readonly seq: number;
  /** ISO 8601 time of the record. */
  readonly at: string;
  /** Hash of the previous record (64 zeros for the first). */
  readonly prevHash: string;
  /** sha256 over the canonical JSON of every other field. */
  readonly hash: string;
}

/** The prevHash of the first record. */
export const GENESIS_HASH = '0'.repeat(64);

/** Hash of a record from all its fields but `hash`. */
export function auditHash(r: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256')
    .update(
      canonicalJson({
        seq: r.seq,
        at: r.at,
        actor: r.actor,
        action: r.action,
        target: r.target,
        details: r.details,
        prevHash: r.prevHash,
      }),
    )
    .digest('hex');
}

/** Makes the next record of a chain. */
export function chainNext(
  prev: { seq: number; hash: string } | undefined,
  event: AuditEvent,
  at: Date,
): AuditRecord {
  const base = {
    seq: (prev?.seq ?? 0) + 1,
    at: at.toISOString(),
    actor: event.actor,
    action: event.action,
    target: event.target,
    details: event.details,
    prevHash: prev?.hash ?? GENESIS_HASH,
  };
  return { ...base, hash: auditHash(base) };
}

/** The first break in a sequence of records read in order from seq 1, or undefined if it is whole. */
export function findChainBreak(
  records: Iterable<AuditRecord>,
  state: { prev?: { seq: number; hash: string } } = {},
): { seq: number; reason: string } | undefined {
  for (const r of records) {
    const expectSeq = (state.prev?.seq ?? 0) + 1;
    if (r.seq !== expectSeq)
      return { seq: r.seq, reason: `expected record ${expectSeq}, found ${r.seq} (removed or reordered)` };
    if (r.prevHash !== (state.prev?.hash ?? GENESIS_HASH))
      return { seq: r.seq, reason: 'prevHash does not match the previous record' };
    if (auditHash(r) !== r.hash) return { seq: r.seq, reason: 'hash does not match the record (edited)' };
    state.prev = { seq: r.seq, hash: r.hash };
  }
  return undefined;
}
