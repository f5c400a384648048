/**
 * Turns each durable cursor commit into ledger records (ADR 0011): what the commit resolved (the
 * difference with the previous commit), what it first saw delivered, and the exceptions the runtime
 * reported since. Cost follows the commits and the window, not the number of deliveries.
 */
import type { DeliveryIntrospect } from '../delivery/introspect.ts';
import type { CursorSnapshot } from '../state/subscriptions-port.ts';
import type { CommitRecordAt, LedgerStore } from './port.ts';

/** Pending offsets with their delivery counts, ascending (a cursor snapshot's `pending`). */
type Pending = readonly (readonly [offset: number, deliveryCount: number, ...rest: unknown[]])[];

interface Seen {
  next: number;
  pending: Pending;
}

/** Flat half-open ranges, merged when adjacent; offsets must come in ascending order. */
class Ranges {
  readonly flat: number[] = [];
  add(from: number, to: number): void {
    if (to <= from) return;
    const n = this.flat.length;
    if (n > 0 && this.flat[n - 1] === from) this.flat[n - 1] = to;
    else this.flat.push(from, to);
  }
}

/** Whether `offset` lies in one of the flat ranges. */
export function inRanges(flat: readonly number[], offset: number): boolean {
  for (let i = 0; i + 1 < flat.length; i += 2)
    if (offset >= (flat[i] as number) && offset < (flat[i + 1] as number)) return true;
  return false;
}

/**
 * Between two commits of a partition: `r`, the offsets resolved (pending before and not now, or read
 * since and not pending now); `d`, those first seen delivered (pending now with a delivery, not
 * delivered before). One merge of the two ascending pending lists, no per-offset maps: a commit's
 * cost follows the window, and that can be thousands of entries per subscription under lag.
 */
export function resolvedAndDelivered(
  prev: Seen,
  now: { next: number; pending: Pending },
): { r: Ranges; d: Ranges } {
  const r = new Ranges();
  const d = new Ranges();
  const a = prev.pending;
  const b = now.pending;
  let j = 0;
  for (let i = 0; i < a.length; i++) {
    const [o, before] = a[i] as Pending[number];
    for (; j < b.length && (b[j] as Pending[number])[0] < o; j++) {
      const [bo, count] = b[j] as Pending[number];
      if (count > 0) d.add(bo, bo + 1);
    }
    const e = b[j];
    if (e !== undefined && e[0] === o) {
      if (e[1] > 0 && before === 0) d.add(o, o + 1);
      j++;
    } else r.add(o, o + 1);
  }
  let from = prev.next;
  for (; j < b.length; j++) {
    const [o, count] = b[j] as Pending[number];
    if (count > 0) d.add(o, o + 1);
    if (o < prev.next) continue;
    r.add(from, o);
    from = o + 1;
  }
  r.add(from, now.next);
  return { r, d };
}

/** Records cursor commits into the ledger store. */
export class LedgerRecorder {
  readonly #seen = new Map<string, Map<number, Seen>>();
  #writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: LedgerStore,
    private readonly introspect: DeliveryIntrospect,
    private readonly onError: (e: unknown) => void,
  ) {
    introspect.onWatch = (name, view) => {
      if (this.#seen.has(name)) return;
      const m = new Map<number, Seen>();
      for (const p of view.parts)
        m.set(p.partition, {
          next: p.next,
          pending: [...p.pending].map(([o, e]) => [o, e.deliveryCount] as const).sort((a, b) => a[0] - b[0]),
        });
      this.#seen.set(name, m);
    };
  }

  /** The last committed cursors of a subscription (at start, before the engine commits). */
  seed(name: string, cursors: readonly CursorSnapshot[]): void {
    const m = new Map<number, Seen>();
    for (const c of cursors) m.set(c.partition, { next: c.next, pending: c.pending });
    this.#seen.set(name, m);
  }

  /** Called by the engine after each cursor commit. Never throws. */
  onCommit(cursors: ReadonlyMap<string, readonly CursorSnapshot[]>, at: number): void {
    try {
      const out: CommitRecordAt[] = [];
      for (const [name, snaps] of cursors) this.#diff(name, snaps, at, out);
      const running = new Set(this.introspect.names());
      for (const name of this.#seen.keys()) if (!running.has(name)) this.#seen.delete(name);
      if (out.length === 0) return;
      this.#writing = this.#writing.then(() => this.store.append(out)).catch(this.onError);
    } catch (e) {
      this.onError(e);
    }
  }

  /** Resolves when the records of every commit so far are stored. */
  flushed(): Promise<void> {
    return this.#writing;
  }

  #diff(name: string, snaps: readonly CursorSnapshot[], at: number, out: CommitRecordAt[]): void {
    let seen = this.#seen.get(name);
    if (seen === undefined) this.#seen.set(name, (seen = new Map()));
    const exceptions = this.introspect.takeExceptions(name);
    for (const s of snaps) {
      const prev = seen.get(s.partition);
      seen.set(s.partition, { next: s.next, pending: s.pending });
      // First sight, or a seek backwards: start afresh (the ledger says so by having no record).
      if (prev === undefined || s.next < prev.next) continue;
      const { r, d } = resolvedAndDelivered(prev, s);
      const x: [number, string][] = [];
      for (const e of exceptions) if (e.partition === s.partition) x.push([e.offset, e.outcome]);
      if (r.flat.length === 0 && d.flat.length === 0 && x.length === 0) continue;
      let lo = Number.MAX_SAFE_INTEGER;
      let hi = 0;
      for (const f of [r.flat, d.flat]) {
        if (f.length === 0) continue;
        lo = Math.min(lo, f[0] as number);
        hi = Math.max(hi, f[f.length - 1] as number);
      }
      for (const [o] of x) {
        lo = Math.min(lo, o);
        hi = Math.max(hi, o + 1);
      }
      out.push({
        subscription: name,
        partition: s.partition,
        record: { t: at, lo, hi, r: r.flat, d: d.flat, x },
      });
    }
  }
}
