/**
 * Positions (DESIGN 5): opaque strings to clients, `<partition>:<offset>` inside. Offsets are
 * non-negative integers, dense and increasing within a partition. A position is meaningful only
 * with the log's epoch, which changes when the log is restored or reset.
 */
import { CdsError } from '../errors/index.ts';

/** A parsed position. */
export interface Position {
  readonly partition: number;
  readonly offset: number;
}

const RE = /^(0|[1-9][0-9]{0,4}):(0|[1-9][0-9]{0,15})$/;

/** Formats a position as its opaque string. */
export function formatPosition(partition: number, offset: number): string {
  return `${partition}:${offset}`;
}

/** Parses a position string; throws INVALID_POSITION naming `field` when it is malformed. */
export function parsePosition(s: string, field = 'position'): Position {
  const m = RE.exec(s);
  if (m === null) {
    throw new CdsError('INVALID_POSITION', `${field}: '${s}' is not a position`, {
      details: { errors: [{ path: field, code: 'invalid_position', message: 'malformed position' }] },
    });
  }
  const offset = Number(m[2]);
  if (!Number.isSafeInteger(offset)) throw new CdsError('INVALID_POSITION', `${field}: offset out of range`);
  return { partition: Number(m[1]), offset };
}

/** Compares two positions of the same partition (negative when a is before b). */
export function comparePositions(a: Position, b: Position): number {
  return a.partition - b.partition || a.offset - b.offset;
}
