/**
 * The range of a historical read (ADR 0019): `from` and `to`, each a time or positions, resolved
 * against the log's extents into one offset range per partition, with a precise error for every way
 * a bound can be wrong (named after its parameter).
 */
import type { Position } from '../domain/position.ts';
import { CdsError } from '../errors/index.ts';
import { firstAtOrAfter, type EventLog } from '../log/index.ts';

/** One bound as the caller gave it. */
export type Bound =
  | { readonly kind: 'time'; readonly time: number }
  /** At most one position per partition (a resume token); partitions not named take the default. */
  | { readonly kind: 'positions'; readonly positions: readonly Position[] };

/** The offsets to read of one partition: [from, to). */
export interface PartitionRange {
  readonly partition: number;
  readonly from: number;
  readonly to: number;
}

const fieldError = (
  code: 'INVALID_QUERY' | 'INVALID_POSITION' | 'POSITION_TRIMMED',
  param: string,
  fieldCode: string,
  message: string,
  extra: Record<string, unknown> = {},
) =>
  new CdsError(code, `${param}: ${message}`, {
    details: { errors: [{ path: param, code: fieldCode, message }], ...extra },
  });

/**
 * Resolves the bounds against the log as it is now. Defaults: `from` the first held record, `to` the
 * end (the next offset), so that a read without `to` ends instead of following the tail. A time
 * before the first held record starts at it (times name no record); a position does name one, so a
 * position of a partition that does not exist or beyond its end is INVALID_POSITION, and one before
 * the first held record (trimmed by retention) is POSITION_TRIMMED with the first held position in
 * `details.first`. `from` after `to` is INVALID_QUERY; `from` equal to `to` is an empty range.
 */
export async function resolveRange(log: EventLog, from?: Bound, to?: Bound): Promise<PartitionRange[]> {
  if (from?.kind === 'time' && to?.kind === 'time' && from.time > to.time)
    throw fieldError('INVALID_QUERY', 'from', 'range', 'must not be after to');
  const extents = log.extents();
  for (const [param, b] of [
    ['from', from],
    ['to', to],
  ] as const) {
    if (b?.kind !== 'positions') continue;
    for (const p of b.positions) {
      const e = extents[p.partition];
      if (e === undefined)
        throw fieldError(
          'INVALID_POSITION',
          param,
          'no_partition',
          `partition ${p.partition} does not exist (the log has ${extents.length})`,
        );
      if (p.offset > e.next)
        throw fieldError(
          'INVALID_POSITION',
          param,
          'beyond_end',
          `${p.partition}:${p.offset} is beyond the end of partition ${p.partition} (next ${p.partition}:${e.next})`,
          { next: `${p.partition}:${e.next}` },
        );
      if (p.offset < e.first)
        throw fieldError(
          'POSITION_TRIMMED',
          param,
          'trimmed',
          `${p.partition}:${p.offset} was removed by retention; partition ${p.partition} starts at ${p.partition}:${e.first}`,
          { first: `${p.partition}:${e.first}` },
        );
    }
  }
  const at = async (b: Bound | undefined, partition: number, dflt: number): Promise<number> => {
    const e = extents[partition]!;
    if (b === undefined) return dflt;
    if (b.kind === 'time') return firstAtOrAfter(log, partition, e.first, e.next, b.time);
    return b.positions.find((p) => p.partition === partition)?.offset ?? dflt;
  };
  const out: PartitionRange[] = [];
  for (const e of extents) {
    const f = await at(from, e.partition, e.first);
    const t = await at(to, e.partition, e.next);
    if (f > t)
      throw fieldError(
        'INVALID_QUERY',
        'from',
        'range',
        `must not be after to (${e.partition}:${f} > ${e.partition}:${t})`,
      );
    out.push({ partition: e.partition, from: f, to: t });
  }
  return out;
}
