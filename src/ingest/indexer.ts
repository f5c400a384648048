/**
 * Keeps the decision index a projection of the log: appended decisions are indexed in log order,
 * in batches, off the publish path (the publish is acknowledged once the log has it); at start the
 * index catches up from its checkpoint, so nothing acknowledged before a crash is ever missing from it.
 * With a log other instances append to as well (cluster mode, ADR 0015), the records between this
 * instance's batches are theirs: they are read from the log and indexed too, so that the order holds.
 */
import type { EventLog, LogRecord } from '../log/index.ts';
import type { DecisionIndex, DecisionIndexEntry } from '../state/index.ts';
import { recordDecision, recordTopics, toIndexEntry, HEADERS } from './record.ts';

/** Writes index entries in log order and reports when they are durable. */
export class Indexer {
  private readonly waiting = new Map<number, Map<number, DecisionIndexEntry[]>>();
  private readonly nextOffset = new Map<number, number>();
  private running: Promise<void> | undefined;
  private queued = 0;
  private idleWaiters: (() => void)[] = [];
  private failure: unknown;

  constructor(
    private readonly index: DecisionIndex,
    private readonly onIndexed: (entries: readonly DecisionIndexEntry[]) => void,
    private readonly onError: (e: unknown) => void,
    /** The log, when other instances append to it too (cluster mode): gaps are read from it. */
    private readonly shared?: EventLog,
  ) {}

  /** Entries submitted and not yet durable in the index. */
  get backlog(): number {
    return this.queued;
  }

  /**
   * Brings the index up to the log's tail (run before serving). Returns how many records were indexed.
   */
  async catchUp(log: EventLog, chunk = 5_000): Promise<number> {
    const cp = await this.index.checkpoint();
    let n = 0;
    for (const ext of log.extents()) {
      let from = Math.max(cp[ext.partition] ?? 0, ext.first);
      while (from < ext.next) {
        const records = await log.read(ext.partition, from, chunk);
        if (records.length === 0) break;
        const entries = records.map(entryOf);
        from = (records[records.length - 1]?.offset ?? from) + 1;
        await this.index.add(entries, { [ext.partition]: from });
        n += entries.length;
      }
      this.nextOffset.set(ext.partition, Math.max(from, ext.next));
    }
    return n;
  }

  /** Queues entries of one appended batch (offsets contiguous from `first`). */
  submit(partition: number, first: number, entries: DecisionIndexEntry[]): void {
    let p = this.waiting.get(partition);
    if (p === undefined) this.waiting.set(partition, (p = new Map()));
    p.set(first, entries);
    this.queued += entries.length;
    this.running ??= this.run();
  }

  private takeReady(): { entries: DecisionIndexEntry[]; through: Record<number, number> } {
    const entries: DecisionIndexEntry[] = [];
    const through: Record<number, number> = {};
    for (const [partition, byFirst] of this.waiting) {
      let next = this.nextOffset.get(partition) ?? 0;
      for (;;) {
        const batch = byFirst.get(next);
        if (batch === undefined || entries.length > 20_000) break;
        byFirst.delete(next);
        entries.push(...batch);
        next += batch.length;
      }
      if (next !== (this.nextOffset.get(partition) ?? 0)) through[partition] = next;
    }
    return { entries, through };
  }

  /**
   * Cluster mode: the records of other instances before this instance's oldest waiting batch of a
   * partition (at most `chunk`), read from the shared log, as a batch to index in their place.
   */
  private async gap(
    chunk = 5_000,
  ): Promise<{ entries: DecisionIndexEntry[]; through: Record<number, number> }> {
    const log = this.shared;
    if (log !== undefined)
      for (const [partition, byFirst] of this.waiting) {
        if (byFirst.size === 0) continue;
        const next = this.nextOffset.get(partition) ?? 0;
        const first = Math.min(...byFirst.keys());
        if (first <= next) continue;
        const records = (await log.read(partition, next, Math.min(chunk, first - next))).filter(
          (r) => r.offset < first,
        );
        if (records.length === 0) continue;
        const last = (records[records.length - 1] as { offset: number }).offset;
        return { entries: records.map(entryOf), through: { [partition]: last + 1 } };
      }
    return { entries: [], through: {} };
  }

  /** Whether some partition's oldest waiting batch starts beyond the next offset to index. */
  private gapAhead(): boolean {
    for (const [partition, byFirst] of this.waiting)
      if (byFirst.size > 0 && Math.min(...byFirst.keys()) > (this.nextOffset.get(partition) ?? 0))
        return true;
    return false;
  }

  private async run(): Promise<void> {
    for (;;) {
      let { entries, through } = this.takeReady();
      let foreign = false;
      if (entries.length === 0 && this.queued > 0 && this.shared !== undefined) {
        ({ entries, through } = await this.gap());
        foreign = true;
        if (entries.length === 0) {
          // Nothing before a waiting batch to fill from the log (its offsets are below what the index
          // already covers: a log that is not the one the index was built from): waiting cannot help.
          if (!this.gapAhead()) break;
          // The gap is not readable here yet. Unref'd: a waiting indexer never holds the process open.
          await new Promise((r) => setTimeout(r, 10).unref());
          continue;
        }
      }
      if (entries.length === 0) break;
      try {
        await this.index.add(entries, through);
      } catch (e) {
        // The log has these decisions; the index catches up from its checkpoint at the next start.
        this.failure = e;
        this.onError(e);
        await new Promise((r) => setTimeout(r, 1000));
        this.requeue(entries);
        continue;
      }
      for (const [p, n] of Object.entries(through)) this.nextOffset.set(Number(p), n);
      if (!foreign) this.queued -= entries.length;
      this.failure = undefined;
      this.onIndexed(entries);
    }
    this.running = undefined;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  private requeue(entries: DecisionIndexEntry[]): void {
    for (const e of entries) {
      let p = this.waiting.get(e.partition);
      if (p === undefined) this.waiting.set(e.partition, (p = new Map()));
      p.set(e.offset, [e]);
    }
  }

  /** The last index failure, while it lasts. */
  get lastError(): unknown {
    return this.failure;
  }

  /** Resolves when everything submitted so far is durable in the index. */
  idle(): Promise<void> {
    if (this.running === undefined) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }
}

/** The index entry of a stored record. */
function entryOf(r: LogRecord): DecisionIndexEntry {
  const d = recordDecision(r);
  return toIndexEntry(
    d,
    recordTopics(r),
    Number(r.headers[HEADERS.priority] ?? d.priority),
    r.partition,
    r.offset,
    r.timestamp,
  );
}
