/**
 * Where each offset of one partition lives in Pulsar: the runs of decision messages that commits
 * listed, in log order (format.ts `Run`), with the offset of each run's first record. Offsets are
 * dense: a run of n records starting at offset o holds o..o+n-1. Kept in parallel arrays (about 50
 * bytes per run); trimming drops the runs that lie wholly before the first offset.
 */
import { compareMessageIds } from './message-id.ts';
import type { MessageId } from './message-id.ts';
import type { Run } from './format.ts';
import { runId } from './format.ts';

/** One record's place: its offset and its message id in the partition topic. */
export interface Located {
  readonly offset: number;
  readonly id: MessageId;
}

/** The runs of one partition. */
export class RunIndex {
  readonly #partition: number;
  #offsets: number[] = [];
  #ledgers: number[] = [];
  #entries: number[] = [];
  #batches: number[] = [];
  #counts: number[] = [];
  #bytes: number[] = [];
  /** Index of the first run still held. */
  #start = 0;
  /** Offset the next committed record gets. */
  #end = 0;
  /** Bytes of the runs held. */
  #heldBytes = 0;

  constructor(partition: number) {
    this.#partition = partition;
  }

  /** Offset the next committed record gets. */
  get end(): number {
    return this.#end;
  }

  /** Bytes of the records of the runs still held. */
  get bytes(): number {
    return this.#heldBytes;
  }

  /** Appends one run; returns the offset of its first record. */
  add(run: Run): number {
    const [l, e, b, n, bytes] = run;
    const at = this.#end;
    this.#offsets.push(at);
    this.#ledgers.push(l);
    this.#entries.push(e);
    this.#batches.push(b);
    this.#counts.push(n);
    this.#bytes.push(bytes);
    this.#end += n;
    this.#heldBytes += bytes;
    return at;
  }

  /** The runs held, in offset order, and the offset of the first (a checkpoint of the index). */
  held(): { base: number; runs: Run[] } {
    const runs: Run[] = [];
    for (let i = this.#start; i < this.#offsets.length; i++) runs.push(this.#run(i));
    return { base: this.#offsets[this.#start] ?? this.#end, runs };
  }

  /** Starts an empty index at `base` (restoring a checkpoint: its runs are added after). */
  restart(base: number): void {
    if (this.#offsets.length > this.#start) throw new Error('RunIndex.restart on an index that holds runs');
    this.#end = base;
  }

  /** Drops the runs that end at or before `first` (whole runs only, as Pulsar drops whole ledgers). */
  dropBefore(first: number): void {
    let i = this.#start;
    while (i < this.#offsets.length && this.#offsets[i]! + this.#counts[i]! <= first) {
      this.#heldBytes -= this.#bytes[i]!;
      i++;
    }
    this.#start = i;
    if (i > 4096 && i > this.#offsets.length / 2) {
      for (const a of [this.#offsets, this.#ledgers, this.#entries, this.#batches, this.#counts, this.#bytes])
        a.splice(0, i);
      this.#start = 0;
    }
  }

  /** Index of the run holding `offset`, or -1. */
  #find(offset: number): number {
    let lo = this.#start;
    let hi = this.#offsets.length - 1;
    if (hi < lo || offset < this.#offsets[lo]! || offset >= this.#end) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#offsets[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  #run(i: number): Run {
    return [this.#ledgers[i]!, this.#entries[i]!, this.#batches[i]!, this.#counts[i]!, this.#bytes[i]!];
  }

  /** The records of [from, to) that the index holds, in offset order. */
  locate(from: number, to: number): Located[] {
    const out: Located[] = [];
    let i = this.#find(from);
    if (i < 0) return out;
    let offset = from;
    while (offset < to && i < this.#offsets.length) {
      const base = this.#offsets[i]!;
      const n = this.#counts[i]!;
      const run = this.#run(i);
      for (let k = offset - base; k < n && offset < to; k++, offset++)
        out.push({ offset, id: runId(run, k, this.#partition) });
      i++;
    }
    return out;
  }

  /** The message id of one offset, if the index holds it. */
  idAt(offset: number): MessageId | undefined {
    const i = this.#find(offset);
    return i < 0 ? undefined : runId(this.#run(i), offset - this.#offsets[i]!, this.#partition);
  }

  /**
   * The smallest message id among the records at or after `from` (they need not be in id order: two
   * instances' batches interleave in the topic but enter the log in commit order). Scans the runs
   * from there to the end.
   */
  lowestIdFrom(from: number): MessageId | undefined {
    let i = this.#find(from);
    if (i < 0) return undefined;
    let lowest: MessageId | undefined;
    for (; i < this.#offsets.length; i++) {
      const base = this.#offsets[i]!;
      const k = Math.max(0, from - base);
      const id = runId(this.#run(i), k, this.#partition);
      if (lowest === undefined || compareMessageIds(id, lowest) < 0) lowest = id;
    }
    return lowest;
  }
}
