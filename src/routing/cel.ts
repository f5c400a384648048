/**
 * CEL conditions over the variable `decision` (DESIGN 4), with @marcbachmann/cel-js (DESIGN 11).
 * Compile errors are refused with their position; evaluation errors (a missing field, a bad
 * conversion) mean "no match" and are counted, never thrown, so one odd decision cannot stop routing.
 */
import { Environment, type ASTNode } from '@marcbachmann/cel-js';
import { validationError, type FieldError } from '../errors/index.ts';
import { compileFast } from './cel-fast.ts';

/** A field error of an expression, with where in the source it is (offset 0-based, line and column 1-based). */
export interface ExpressionFieldError extends FieldError {
  readonly offset: number;
  readonly line: number;
  readonly column: number;
}

/** What a CEL evaluation is given: the decision under the name CEL expressions use. */
export interface CelContext {
  readonly decision: unknown;
}

/** The result of one evaluation: the boolean, or why there is none. */
export type CelOutcome = boolean | { readonly error: string };

/** A compiled CEL condition, shared by every user of the same source text. */
export interface CompiledCel {
  /** The expression text. */
  readonly source: string;
  /** The parsed tree (read by filter analysis). */
  readonly ast: ASTNode;
  /** Whether it holds: true only for a boolean true; an error or a non-boolean counts as an error and is false. */
  matches(ctx: CelContext): boolean;
  /** The outcome with the reason of an error (for explain). */
  evaluate(ctx: CelContext): CelOutcome;
  /** `matches` given the decision itself (the hot path: no context object unless cel-js must run). */
  holds(decision: unknown): boolean;
  /** `evaluate` given the decision itself. */
  outcome(decision: unknown): CelOutcome;
  /** Whether part of it runs as compiled JS before falling back to cel-js (cel-fast.ts). */
  readonly fast: boolean;
  /** Evaluations of this expression that failed, since it was compiled. */
  readonly errorCount: number;
}

/** Longest expression accepted, in characters: bounds parse time and the size of stored rules. */
export const MAX_EXPRESSION_LENGTH = 4096;
const CACHE_LIMIT = 10_000;

const env = new Environment({ unlistedVariablesAreDyn: false }).registerVariable('decision', 'map');
const cache = new Map<string, CompiledCel>();
let totalErrors = 0;

/** Evaluation errors of all CEL conditions since the process started (for metrics). */
export function celErrorTotal(): number {
  return totalErrors;
}

/** Where `offset` is in `source`, as 1-based line and column. */
export function lineColumn(source: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

function located(
  source: string,
  path: string,
  code: string,
  summary: string,
  offset: number,
): ExpressionFieldError {
  const { line, column } = lineColumn(source, offset);
  return { path, code, message: `${summary} (line ${line}, column ${column})`, offset, line, column };
}

function errorOffset(e: unknown): number {
  const x = e as { range?: { start?: unknown }; node?: { start?: unknown; pos?: unknown } };
  const o = x.range?.start ?? x.node?.start ?? x.node?.pos;
  return typeof o === 'number' ? o : 0;
}

function summaryOf(e: unknown): string {
  const x = e as { summary?: unknown; message?: unknown };
  const s = typeof x.summary === 'string' ? x.summary : String(x.message ?? e);
  return s.split('\n')[0] ?? s;
}

/** Compiles (or takes from the cache) a condition; `path` is where it sits in the input, for the errors. */
export function tryCompileCel(source: string, path = ''): CompiledCel | ExpressionFieldError {
  const hit = cache.get(source);
  if (hit !== undefined) return hit;
  if (typeof source !== 'string' || source.trim().length === 0) {
    return { path, code: 'required', message: 'the expression is empty', offset: 0, line: 1, column: 1 };
  }
  if (source.length > MAX_EXPRESSION_LENGTH) {
    return located(
      source,
      path,
      'too_long',
      `the expression has more than ${MAX_EXPRESSION_LENGTH} characters`,
      MAX_EXPRESSION_LENGTH,
    );
  }
  let parsed: ReturnType<Environment['parse']>;
  try {
    parsed = env.parse(source);
  } catch (e) {
    return located(source, path, 'cel_syntax', summaryOf(e), errorOffset(e));
  }
  const checked = parsed.check();
  if (!checked.valid) {
    return located(source, path, 'cel_type', summaryOf(checked.error), errorOffset(checked.error));
  }
  if (checked.type !== 'bool' && checked.type !== 'dyn') {
    return located(source, path, 'cel_not_boolean', `the expression gives ${checked.type}, not bool`, 0);
  }
  const compiled = wrap(source, parsed);
  if (cache.size >= CACHE_LIMIT) {
    // Drops the oldest entry: compiled programs stay valid for whoever holds them.
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(source, compiled);
  return compiled;
}

/** Compiles a condition or throws VALIDATION_FAILED with the position of the error. */
export function compileCel(source: string, path = ''): CompiledCel {
  const r = tryCompileCel(source, path);
  if ('code' in r) throw validationError(`invalid CEL expression: ${r.message}`, [r]);
  return r;
}

function wrap(source: string, program: ReturnType<Environment['parse']>): CompiledCel {
  let errors = 0;
  const fast = compileFast(program.ast);
  const slowMatches = (ctx: CelContext): boolean => {
    try {
      const v: unknown = program(ctx);
      if (v === true) return true;
      if (v !== false) {
        errors++;
        totalErrors++;
      }
      return false;
    } catch {
      errors++;
      totalErrors++;
      return false;
    }
  };
  const slowEvaluate = (ctx: CelContext): CelOutcome => {
    try {
      const v: unknown = program(ctx);
      if (typeof v === 'boolean') return v;
      errors++;
      totalErrors++;
      return { error: `the expression gave ${typeof v}, not bool` };
    } catch (e) {
      errors++;
      totalErrors++;
      return { error: summaryOf(e) };
    }
  };
  // The fast closure answers or says "unknown"; cel-js decides (and counts errors) only then.
  if (fast === undefined) {
    return {
      source,
      ast: program.ast,
      fast: false,
      get errorCount() {
        return errors;
      },
      matches: slowMatches,
      evaluate: slowEvaluate,
      holds: (decision) => slowMatches({ decision }),
      outcome: (decision) => slowEvaluate({ decision }),
    };
  }
  return {
    source,
    ast: program.ast,
    fast: true,
    get errorCount() {
      return errors;
    },
    matches: (ctx) => fast(ctx.decision) ?? slowMatches(ctx),
    evaluate: (ctx) => fast(ctx.decision) ?? slowEvaluate(ctx),
    holds: (decision) => fast(decision) ?? slowMatches({ decision }),
    outcome: (decision) => fast(decision) ?? slowEvaluate({ decision }),
  };
}
