/**
 * Splits a CEL condition into index terms and a remainder (DESIGN 9). A top-level conjunct
 * `decision.<path> == <literal>` (either order) or `decision.<path> in [<literals>]` becomes a term;
 * everything else stays in the remainder, evaluated only on candidates the terms let through.
 *
 * Why this is exact: CEL's `&&` is true only when every conjunct is true (an error or false in any
 * conjunct makes the whole false or an error, and both mean "no match"); a term is true exactly when
 * the field's value equals one of the literals, which is what the hash look-up tests. Whenever the
 * remainder cannot be rebuilt faithfully, the whole expression is kept as the remainder.
 */
import { isDeepStrictEqual } from 'node:util';
import { serialize, type ASTNode } from '@marcbachmann/cel-js';
import { validationError } from '../errors/index.ts';
import { tryCompileCel, type CompiledCel, type ExpressionFieldError } from './cel.ts';
import { compileTerm, type CompiledTerm, type IndexTerm } from './term-index.ts';

/** A condition split for indexing. */
export interface AnalysedFilter {
  /** The full expression text. */
  readonly source: string;
  /** The full compiled expression (for explain and for callers that do not index). */
  readonly full: CompiledCel;
  /** Terms every match satisfies; each one alone can serve as an index key. */
  readonly indexable: readonly CompiledTerm[];
  /** What is left to evaluate on candidates; null when the terms are the whole condition. */
  readonly remainder: CompiledCel | null;
}

/** Analyses a condition, or returns its compile error. */
export function tryAnalyseFilter(source: string, path = ''): AnalysedFilter | ExpressionFieldError {
  const full = tryCompileCel(source, path);
  if ('code' in full) return full;
  const conjuncts: ASTNode[] = [];
  flatten(full.ast, conjuncts);
  const terms: IndexTerm[] = [];
  const rest: ASTNode[] = [];
  for (const c of conjuncts) {
    const t = termOf(c);
    if (t === undefined) rest.push(c);
    else terms.push(t);
  }
  if (terms.length === 0) return Object.freeze({ source, full, indexable: [], remainder: full });
  const indexable = Object.freeze(terms.map(compileTerm));
  if (rest.length === 0) return Object.freeze({ source, full, indexable, remainder: null });
  return Object.freeze({ source, full, indexable, remainder: rebuild(rest) ?? full });
}

/** Analyses a condition; throws VALIDATION_FAILED with the position of a compile error. */
export function analyseFilter(source: string, path = ''): AnalysedFilter {
  const r = tryAnalyseFilter(source, path);
  if ('code' in r) throw validationError(`invalid CEL expression: ${r.message}`, [r]);
  return r;
}

/** Whether a decision passes: every term holds and the remainder is true (what the full expression says). */
export function filterHolds(f: AnalysedFilter, decision: unknown): boolean {
  for (const t of f.indexable) if (!t.holds(decision)) return false;
  return f.remainder === null || f.remainder.matches({ decision });
}

function flatten(n: ASTNode, out: ASTNode[]): void {
  if (n.op === '&&') {
    flatten(n.args[0], out);
    flatten(n.args[1], out);
  } else out.push(n);
}

/** The dotted path of `decision.a.b`, or undefined for anything else. */
function fieldPath(n: ASTNode): string | undefined {
  const segs: string[] = [];
  let x: ASTNode = n;
  while (x.op === '.') {
    segs.unshift(x.args[1]);
    x = x.args[0];
  }
  return x.op === 'id' && x.args === 'decision' && segs.length > 0 ? segs.join('.') : undefined;
}

/** The JS key of a string or number literal (a negated number included), or undefined. */
function literal(n: ASTNode): string | number | undefined {
  let neg = false;
  let x = n;
  if (x.op === '-_') {
    neg = true;
    x = x.args;
  }
  if (x.op !== 'value') return undefined;
  const v = x.args;
  if (typeof v === 'string') return neg ? undefined : v;
  if (typeof v === 'bigint') {
    // Beyond 2^53 a double cannot hold the int exactly; leave such tests to CEL.
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    const num = Number(v);
    return neg ? -num : num;
  }
  if (typeof v === 'number' && Number.isFinite(v)) return neg ? -v : v;
  return undefined;
}

function termOf(n: ASTNode): IndexTerm | undefined {
  if (n.op === '==') {
    const [l, r] = n.args;
    const lf = fieldPath(l);
    const rl = literal(r);
    if (lf !== undefined && rl !== undefined) return term(lf, [rl]);
    const rf = fieldPath(r);
    const ll = literal(l);
    if (rf !== undefined && ll !== undefined) return term(rf, [ll]);
    return undefined;
  }
  if (n.op === 'in') {
    const [l, r] = n.args;
    const f = fieldPath(l);
    if (f === undefined || r.op !== 'list') return undefined;
    const values: Array<string | number> = [];
    let kind: string | undefined;
    for (const e of r.args) {
      const v = literal(e);
      // A list mixing kinds (or ints with doubles) is an error in CEL, never a match: keep it for CEL.
      const k =
        e.op === 'value' ? typeof e.args : e.op === '-_' && e.args.op === 'value' ? typeof e.args.args : '?';
      if (v === undefined || (kind !== undefined && k !== kind)) return undefined;
      kind = k;
      values.push(v);
    }
    return term(f, values);
  }
  return undefined;
}

function term(field: string, values: Array<string | number>): IndexTerm {
  const unique = [...new Set(values)];
  return { field, values: unique as string[] | number[] };
}

/** The remaining conjuncts as one compiled expression, or undefined when the rebuilt text parses differently. */
function rebuild(rest: readonly ASTNode[]): CompiledCel | undefined {
  let text: string;
  try {
    text = rest.map((n) => `(${serialize(n)})`).join(' && ');
  } catch {
    return undefined;
  }
  const compiled = tryCompileCel(text);
  if ('code' in compiled) return undefined;
  const again: ASTNode[] = [];
  flatten(compiled.ast, again);
  if (again.length !== rest.length) return undefined;
  for (let i = 0; i < rest.length; i++) {
    if (!isDeepStrictEqual(shape(again[i]), shape(rest[i]))) return undefined;
  }
  return compiled;
}

/** The tree as plain data without source positions, for comparing two parses. */
function shape(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(shape);
  if (typeof x === 'object' && x !== null && 'op' in x && 'args' in x) {
    return { op: (x as { op: unknown }).op, args: shape((x as { args: unknown }).args) };
  }
  return x;
}
