/**
 * Where retention may cut a partition (ADR 0017), computed cheaply: the records of a partition are
 * tallied once, as they arrive, into chunks of consecutive offsets holding per policy the count, the
 * payload bytes and the newest receivedAt of the records it governs. A run then walks the chunks from
 * the newest back (suffix sums) to find the first chunk that must stay, and reads only that chunk's
 * records again to place the cut exactly. Everything here is pure except the reader passed in.
 */
import { DEFAULT_POLICY, type CompiledPolicy } from './policy.ts';

/** What retention needs of one record. */
export interface RecordFacts {
  readonly offset: number;
  /** receivedAt, ms since the epoch. */
  readonly timestamp: number;
  /** Payload bytes. */
  readonly bytes: number;
  /** Indexes of the policies governing its topics (PolicySet.of). */
  readonly policies: readonly number[];
}

/** Per-policy totals of a run of records. */
export interface Tally {
  count: number;
  bytes: number;
  /** Newest receivedAt among them. */
  newest: number;
}

/** A run of consecutive offsets [start, end) and its per-policy tallies. */
export interface Chunk {
  start: number;
  end: number;
  readonly stats: Map<number, Tally>;
}

/** Adds one record to per-policy tallies. */
export function addFacts(stats: Map<number, Tally>, r: RecordFacts): void {
  for (const p of r.policies) {
    const t = stats.get(p);
    if (t === undefined) stats.set(p, { count: 1, bytes: r.bytes, newest: r.timestamp });
    else {
      t.count++;
      t.bytes += r.bytes;
      if (r.timestamp > t.newest) t.newest = r.timestamp;
    }
  }
}

/** Tallies of records appended in offset order, in chunks of `chunkSize`. */
export class PartitionTally {
  readonly chunks: Chunk[] = [];
  /** The next offset to tally. */
  scanned: number;

  constructor(
    first: number,
    readonly chunkSize: number,
  ) {
    this.scanned = first;
  }

  /** Tallies the next record (its offset must be `scanned`, or later after a trim under us). */
  add(r: RecordFacts): void {
    let last = this.chunks[this.chunks.length - 1];
    if (last === undefined || last.end !== r.offset || last.end - last.start >= this.chunkSize) {
      last = { start: r.offset, end: r.offset, stats: new Map() };
      this.chunks.push(last);
    }
    addFacts(last.stats, r);
    last.end = r.offset + 1;
    this.scanned = r.offset + 1;
  }
}

/** Whether policy `p` lets a record go, given its receivedAt and the newer records of `p` after it. */
export function mayGo(
  policies: readonly CompiledPolicy[],
  p: number,
  timestamp: number,
  newerCount: number,
  newerBytes: number,
  now: number,
): boolean {
  if (p === DEFAULT_POLICY) return false;
  const l = policies[p];
  if (l === undefined) return false;
  if (l.maxAgeMs !== undefined && timestamp < now - l.maxAgeMs) return true;
  if (l.maxCount !== undefined && newerCount >= l.maxCount) return true;
  if (l.maxBytes !== undefined && newerBytes >= l.maxBytes) return true;
  return false;
}

/**
 * The reference definition, record by record (unit tests compare the chunked computation with it):
 * the first offset of `records` (ascending, dense) that some governing policy keeps, or `end` when
 * every record may go. `suffix` holds the tallies of the newer records that follow `records`.
 */
export function trimPointOf(
  records: readonly RecordFacts[],
  policies: readonly CompiledPolicy[],
  now: number,
  end: number,
  suffix: ReadonlyMap<number, { count: number; bytes: number }> = new Map(),
): number {
  const s = new Map([...suffix].map(([k, v]) => [k, { ...v }]));
  let cut = end;
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i] as RecordFacts;
    const ok = r.policies.every((p) => {
      const x = s.get(p);
      return mayGo(policies, p, r.timestamp, x?.count ?? 0, x?.bytes ?? 0, now);
    });
    if (!ok) cut = r.offset;
    for (const p of r.policies) {
      const x = s.get(p);
      if (x === undefined) s.set(p, { count: 1, bytes: r.bytes });
      else {
        x.count++;
        x.bytes += r.bytes;
      }
    }
  }
  return cut;
}

/**
 * The trim point of a tallied partition: every record in [first, answer) may go by its policies.
 * `read(from, to)` returns the facts of the records [from, to) still in the log (the boundary chunk is
 * read again, nothing else). `first` is the partition's first offset; the answer is in [first, scanned].
 */
export async function chunkedTrimPoint(
  tally: PartitionTally,
  policies: readonly CompiledPolicy[],
  now: number,
  first: number,
  read: (from: number, to: number) => Promise<RecordFacts[]>,
): Promise<number> {
  const chunks = tally.chunks;
  // Suffix sums: the totals of every chunk, less each chunk as the walk passes it, so that at chunk i
  // `suffix` holds the tallies of the newer chunks i+1 .. end.
  const suffix = new Map<number, { count: number; bytes: number }>();
  for (const c of chunks)
    for (const [p, t] of c.stats) {
      const s = suffix.get(p);
      if (s === undefined) suffix.set(p, { count: t.count, bytes: t.bytes });
      else {
        s.count += t.count;
        s.bytes += t.bytes;
      }
    }
  for (const c of chunks) {
    for (const [p, t] of c.stats) {
      const s = suffix.get(p) as { count: number; bytes: number };
      s.count -= t.count;
      s.bytes -= t.bytes;
    }
    if (c.end <= first) continue;
    // The chunk may go whole when the newest record of each of its policies may go: count and bytes
    // only grow towards older records, and `newest` bounds every receivedAt of the policy's records.
    let whole = true;
    for (const [p, t] of c.stats) {
      const s = suffix.get(p);
      if (!mayGo(policies, p, t.newest, s?.count ?? 0, s?.bytes ?? 0, now)) {
        whole = false;
        break;
      }
    }
    if (whole) continue;
    // Place the cut inside the chunk, record by record, from its newest record back.
    const recs = await read(Math.max(c.start, first), c.end);
    const inChunk = trimPointOf(recs, policies, now, c.end, suffix);
    if (inChunk < c.end) return inChunk;
  }
  const last = chunks[chunks.length - 1];
  return Math.max(first, last === undefined ? tally.scanned : last.end);
}
