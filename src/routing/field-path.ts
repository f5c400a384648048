/**
 * Reading a field of a decision by its dotted path, with the reach of CEL field selection: only own
 * properties of plain (non-array) objects, so that `portfolioId.length` or `toString` never yields a
 * value that CEL would not see.
 */
import { DecisionSchema } from '../domain/decision.ts';

/** A compiled reader of one field path; `undefined` when any step is absent or not an object. */
export type FieldGetter = (decision: unknown) => unknown;

const hasOwn = Object.prototype.hasOwnProperty;

function step(v: unknown, key: string): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !hasOwn.call(v, key)) return undefined;
  return (v as Record<string, unknown>)[key];
}

/** Compiles a reader for `path` (its segments); the common depths get a closure without a loop. */
export function fieldGetter(path: readonly string[]): FieldGetter {
  const [a, b, c] = path;
  if (path.length === 1 && a !== undefined) return (d) => step(d, a);
  if (path.length === 2 && a !== undefined && b !== undefined) return (d) => step(step(d, a), b);
  if (path.length === 3 && a !== undefined && b !== undefined && c !== undefined) {
    return (d) => step(step(step(d, a), b), c);
  }
  return (d) => {
    let v = d;
    for (const k of path) v = step(v, k);
    return v;
  };
}

/** What a path of the Decision schema leads to. */
export type FieldKind = 'scalar' | 'object' | 'array' | 'unknown';

interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  patternProperties?: Record<string, SchemaNode>;
  anyOf?: SchemaNode[];
}

const SCALARS = new Set(['string', 'integer', 'number', 'boolean']);

/** Whether `path` names a field of the Decision schema, and of what kind (attributes accept any key). */
export function decisionFieldKind(path: readonly string[]): FieldKind {
  let s: SchemaNode | undefined = DecisionSchema as unknown as SchemaNode;
  for (const seg of path) {
    if (s === undefined) return 'unknown';
    if (s.properties !== undefined) s = hasOwn.call(s.properties, seg) ? s.properties[seg] : undefined;
    else if (s.patternProperties !== undefined) s = Object.values(s.patternProperties)[0];
    else return 'unknown';
  }
  if (s === undefined) return 'unknown';
  if (s.type === 'object') return 'object';
  if (s.type === 'array') return 'array';
  if (s.type !== undefined && SCALARS.has(s.type)) return 'scalar';
  if (s.anyOf !== undefined && s.anyOf.every((x) => x.type !== undefined && SCALARS.has(x.type)))
    return 'scalar';
  return 'unknown';
}
