/**
 * Plain-JS closures for the common shapes of CEL conditions (ADR 0004): a field compared with a
 * number or string literal, `double(field)` compared with a number, `field in [literals]`,
 * `has(field)`, boolean literals, and `&&`, `||`, `!` of those.
 *
 * A closure answers only where the answer is plain: the field is an own property holding a value of
 * the literal's kind (a finite number, a string, or for `double()` a finite number or a strict
 * decimal string such as `-12.5`). Anywhere else it answers UNKNOWN (`undefined`) and the caller
 * evaluates the whole expression with cel-js, so evaluation errors, their messages and their counts
 * stay exactly cel-js's. `&&` and `||` follow CEL's commutative rules: `false && x` is false and
 * `true || x` is true whatever x is (an error included), so a known side decides alone.
 */
import type { ASTNode } from '@marcbachmann/cel-js';
import { fieldGetter, type FieldGetter } from './field-path.ts';

/** A fast test of a decision: the boolean CEL would give, or `undefined` when cel-js must decide. */
export type FastCondition = (decision: unknown) => boolean | undefined;

const UNKNOWN: FastCondition = () => undefined;
const TRUE: FastCondition = () => true;
const FALSE: FastCondition = () => false;
const hasOwn = Object.prototype.hasOwnProperty;

/**
 * Compiles `ast` into a fast test, or returns `undefined` when no part of it has a compiled shape
 * (then a closure would only add a call before cel-js).
 */
export function compileFast(ast: ASTNode): FastCondition | undefined {
  const state = { compiled: 0 };
  const f = node(ast, state);
  return state.compiled > 0 ? f : undefined;
}

function node(n: ASTNode, s: { compiled: number }): FastCondition {
  switch (n.op) {
    case '&&': {
      const a = node(n.args[0], s);
      const b = node(n.args[1], s);
      s.compiled++;
      return (d) => {
        const x = a(d);
        if (x === false) return false;
        const y = b(d);
        if (y === false) return false;
        return x === undefined || y === undefined ? undefined : true;
      };
    }
    case '||': {
      const a = node(n.args[0], s);
      const b = node(n.args[1], s);
      s.compiled++;
      return (d) => {
        const x = a(d);
        if (x === true) return true;
        const y = b(d);
        if (y === true) return true;
        return x === undefined || y === undefined ? undefined : false;
      };
    }
    case '!_': {
      const a = node(n.args, s);
      s.compiled++;
      return (d) => {
        const x = a(d);
        return x === undefined ? undefined : !x;
      };
    }
    case 'value':
      if (n.args === true || n.args === false) {
        s.compiled++;
        return n.args ? TRUE : FALSE;
      }
      return UNKNOWN;
    case '==':
    case '!=':
    case '<':
    case '<=':
    case '>':
    case '>=':
      return comparison(n.op, n.args[0], n.args[1], s);
    case 'in':
      return membership(n.args[0], n.args[1], s);
    case 'call':
      return call(n, s);
    default:
      return UNKNOWN;
  }
}

/** The path of `decision.a.b` as segments, or undefined for anything else. */
function fieldPath(n: ASTNode): string[] | undefined {
  const segs: string[] = [];
  let x: ASTNode = n;
  while (x.op === '.') {
    segs.unshift(x.args[1]);
    x = x.args[0];
  }
  return x.op === 'id' && x.args === 'decision' && segs.length > 0 ? segs : undefined;
}

/** A number literal (int within 2^53 or finite double, negated or not) or a string literal; undefined otherwise. */
function literal(n: ASTNode): { kind: 'int' | 'double' | 'string'; value: number | string } | undefined {
  let neg = false;
  let x = n;
  if (x.op === '-_') {
    neg = true;
    x = x.args;
  }
  if (x.op !== 'value') return undefined;
  const v: unknown = x.args;
  if (typeof v === 'string') return neg ? undefined : { kind: 'string', value: v };
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    return { kind: 'int', value: neg ? -Number(v) : Number(v) };
  }
  if (typeof v === 'number' && Number.isFinite(v)) return { kind: 'double', value: neg ? -v : v };
  return undefined;
}

/** Reads a number operand: a finite number field, or `double(field)` of a finite number or strict decimal string. */
type NumberRead = (d: unknown) => number | undefined;

function numberField(get: FieldGetter): NumberRead {
  return (d) => {
    const v = get(d);
    return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
  };
}

/** Whether `s` is `-?digits(.digits)?`: the strings on which cel-js's double() is exactly Number(s). */
function isDecimal(s: string): boolean {
  const n = s.length;
  let i = s.charCodeAt(0) === 45 ? 1 : 0; // '-'
  const start = i;
  while (i < n && isDigit(s.charCodeAt(i))) i++;
  if (i === start) return false;
  if (i === n) return true;
  if (s.charCodeAt(i) !== 46 || i + 1 === n) return false; // '.'
  for (i++; i < n; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

// The last string converted by double() and its value, shared by all conditions: many rules read the
// same field of one decision (`double(decision.quantity) > N`), and a string's value never changes,
// so the cache is exact whatever the caller does with its decisions.
let lastText = '';
let lastNumber: number | undefined;

function doubleOfText(v: string): number | undefined {
  if (v === lastText) return lastNumber;
  const n = v.length <= 40 && isDecimal(v) ? Number(v) : undefined;
  lastText = v;
  lastNumber = n;
  return n;
}

function doubleOfField(get: FieldGetter): NumberRead {
  return (d) => {
    const v = get(d);
    if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
    return typeof v === 'string' ? doubleOfText(v) : undefined;
  };
}

function numberOperand(n: ASTNode): NumberRead | undefined {
  const path = fieldPath(n);
  if (path !== undefined) return numberField(fieldGetter(path));
  if (n.op === 'call' && n.args[0] === 'double' && n.args[1].length === 1) {
    const p = fieldPath(n.args[1][0] as ASTNode);
    if (p !== undefined) return doubleOfField(fieldGetter(p));
  }
  return undefined;
}

const FLIP: Record<string, string> = { '==': '==', '!=': '!=', '<': '>', '<=': '>=', '>': '<', '>=': '<=' };

function comparison(op: string, l: ASTNode, r: ASTNode, s: { compiled: number }): FastCondition {
  let lit = literal(r);
  let operand = l;
  if (lit === undefined) {
    lit = literal(l);
    operand = r;
    op = FLIP[op] as string;
  }
  if (lit === undefined) return UNKNOWN;
  if (lit.kind === 'string') {
    const path = fieldPath(operand);
    if (path === undefined || (op !== '==' && op !== '!=')) return UNKNOWN;
    const get = fieldGetter(path);
    const want = lit.value as string;
    s.compiled++;
    return op === '=='
      ? (d) => {
          const v = get(d);
          return typeof v === 'string' ? v === want : undefined;
        }
      : (d) => {
          const v = get(d);
          return typeof v === 'string' ? v !== want : undefined;
        };
  }
  const read = numberOperand(operand);
  if (read === undefined) return UNKNOWN;
  const k = lit.value as number;
  s.compiled++;
  return numberTest(op, read, k);
}

function numberTest(op: string, read: NumberRead, k: number): FastCondition {
  switch (op) {
    case '==':
      return (d) => {
        const v = read(d);
        return v === undefined ? undefined : v === k;
      };
    case '!=':
      return (d) => {
        const v = read(d);
        return v === undefined ? undefined : v !== k;
      };
    case '<':
      return (d) => {
        const v = read(d);
        return v === undefined ? undefined : v < k;
      };
    case '<=':
      return (d) => {
        const v = read(d);
        return v === undefined ? undefined : v <= k;
      };
    case '>':
      return (d) => {
        const v = read(d);
        return v === undefined ? undefined : v > k;
      };
    default:
      return (d) => {
        const v = read(d);
        return v === undefined ? undefined : v >= k;
      };
  }
}

/** `decision.<path> in [literals]`, all strings or all numbers of one kind (a mixed list is CEL's to judge). */
function membership(l: ASTNode, r: ASTNode, s: { compiled: number }): FastCondition {
  const path = fieldPath(l);
  if (path === undefined || r.op !== 'list' || r.args.length === 0) return UNKNOWN;
  let kind: string | undefined;
  const values = new Set<string | number>();
  for (const e of r.args) {
    const lit = literal(e);
    if (lit === undefined || (kind !== undefined && lit.kind !== kind)) return UNKNOWN;
    kind = lit.kind;
    values.add(lit.value);
  }
  const get = fieldGetter(path);
  s.compiled++;
  if (kind === 'string') {
    return (d) => {
      const v = get(d);
      return typeof v === 'string' ? values.has(v) : undefined;
    };
  }
  return (d) => {
    const v = get(d);
    return typeof v === 'number' && Number.isFinite(v) ? values.has(v) : undefined;
  };
}

/** `has(decision.a.b)`: true when the parent object owns the key, false when no object along its chain has it. */
function call(n: ASTNode, s: { compiled: number }): FastCondition {
  const [name, args] = n.args as [string, ASTNode[]];
  if (name !== 'has' || args.length !== 1) return UNKNOWN;
  const path = fieldPath(args[0] as ASTNode);
  if (path === undefined) return UNKNOWN;
  const key = path[path.length - 1] as string;
  const parentPath = path.slice(0, -1);
  const parent: FieldGetter = parentPath.length === 0 ? (d) => d : fieldGetter(parentPath);
  s.compiled++;
  return (d) => {
    const p = parent(d);
    if (typeof p !== 'object' || p === null || Array.isArray(p)) return undefined;
    if (hasOwn.call(p, key)) return (p as Record<string, unknown>)[key] === undefined ? undefined : true;
    return key in p ? undefined : false;
  };
}
