/**
 * Hash indexes over decision fields (DESIGN 9): an entry whose filter requires `decision.<field>` to
 * equal one of some literals is filed under each literal, so a decision finds its candidates with one
 * map look-up per indexed field, however many entries there are.
 */
import { fieldGetter, type FieldGetter } from './field-path.ts';

/** A literal an index is keyed by: CEL strings, and CEL numbers (int or double) compared by value. */
export type IndexKey = string | number;

/** An index term: the filter holds only if the field's value is one of `values`. */
export interface IndexTerm {
  /** Dotted field path under `decision`, for example `instrument.assetClass`. */
  readonly field: string;
  /** The accepted literals (all strings or all numbers). */
  readonly values: readonly string[] | readonly number[];
}

/** A term ready to test decisions. */
export interface CompiledTerm extends IndexTerm {
  /** Reads the field from a decision. */
  readonly getter: FieldGetter;
  /** The accepted literals as a set. */
  readonly set: ReadonlySet<IndexKey>;
  /** Whether the decision's field value is one of the literals (CEL `==` on strings and numbers). */
  holds(decision: unknown): boolean;
}

/** Compiles a term; numbers are keyed by value, so the int 7 and the double 7.0 are one key, as CEL's `==` says. */
export function compileTerm(term: IndexTerm): CompiledTerm {
  const getter = fieldGetter(term.field.split('.'));
  const set = new Set<IndexKey>(term.values);
  return {
    field: term.field,
    values: term.values,
    getter,
    set,
    holds(decision: unknown): boolean {
      const v = getter(decision);
      return (typeof v === 'string' || typeof v === 'number') && set.has(v);
    },
  };
}

interface FieldSlot<T> {
  readonly field: string;
  readonly getter: FieldGetter;
  /** Items per value, as arrays: iterating them per decision costs no iterator (an item is in a list at most once). */
  readonly byValue: Map<IndexKey, T[]>;
}

/** Items filed by one of their terms (the one with fewest literals); `collect` yields each candidate item once. */
export class TermIndex<T> {
  readonly #fields = new Map<string, FieldSlot<T>>();
  #slots: FieldSlot<T>[] = [];
  readonly #items = new Map<T, CompiledTerm>();

  /** Number of indexed items. */
  get size(): number {
    return this.#items.size;
  }

  /** Files `item` under its most selective term and returns that term; `undefined` (not filed) when it has none. */
  add(item: T, terms: readonly CompiledTerm[]): CompiledTerm | undefined {
    this.remove(item);
    let best: CompiledTerm | undefined;
    for (const t of terms) if (best === undefined || t.set.size < best.set.size) best = t;
    if (best === undefined) return undefined;
    let slot = this.#fields.get(best.field);
    if (slot === undefined) {
      slot = { field: best.field, getter: best.getter, byValue: new Map() };
      this.#fields.set(best.field, slot);
      this.#slots = [...this.#fields.values()];
    }
    for (const v of best.set) {
      let s = slot.byValue.get(v);
      if (s === undefined) slot.byValue.set(v, (s = []));
      s.push(item); // `remove` above took any earlier filing of `item`, so it is not there twice
    }
    this.#items.set(item, best);
    return best;
  }

  /** Takes `item` out; returns whether it was filed. */
  remove(item: T): boolean {
    const term = this.#items.get(item);
    if (term === undefined) return false;
    this.#items.delete(item);
    const slot = this.#fields.get(term.field);
    if (slot !== undefined) {
      for (const v of term.set) {
        const s = slot.byValue.get(v);
        if (s === undefined) continue;
        const at = s.indexOf(item);
        if (at >= 0) s.splice(at, 1);
        if (s.length === 0) slot.byValue.delete(v);
      }
      if (slot.byValue.size === 0) {
        this.#fields.delete(term.field);
        this.#slots = [...this.#fields.values()];
      }
    }
    return true;
  }

  /** Calls `visit` once for each item whose filing term holds for `decision` (a field has one value, so one set each). */
  collect(decision: unknown, visit: (item: T) => void): void {
    const slots = this.#slots;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as FieldSlot<T>;
      const v = slot.getter(decision);
      if (typeof v !== 'string' && typeof v !== 'number') continue;
      const s = slot.byValue.get(v);
      if (s !== undefined) for (let k = 0; k < s.length; k++) visit(s[k] as T);
    }
  }

  /**
   * Writes into `out` from index 0 each item whose filing term holds and returns how many (the
   * allocation-free form of `collect`); `out` keeps its length, since truncating costs a runtime call.
   */
  collectInto(decision: unknown, out: T[]): number {
    let n = 0;
    const slots = this.#slots;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as FieldSlot<T>;
      const v = slot.getter(decision);
      if (typeof v !== 'string' && typeof v !== 'number') continue;
      const s = slot.byValue.get(v);
      if (s !== undefined) for (let k = 0; k < s.length; k++) out[n++] = s[k] as T;
    }
    return n;
  }

  /** The term `item` is filed under, if any. */
  termOf(item: T): CompiledTerm | undefined {
    return this.#items.get(item);
  }
}
