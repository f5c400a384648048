/**
 * Validation of decisions: the compiled schema check, then the rules a schema cannot say. Every
 * failing field is reported by path with a stable code, never only the first.
 */
import { FormatRegistry } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import type { FieldError } from '../errors/index.ts';
import { DecisionSchema, type Decision } from './decision.ts';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (v) => RFC3339.test(v) && !Number.isNaN(Date.parse(v)));
}

const checker = TypeCompiler.Compile(DecisionSchema);

/** Maps TypeBox's error kinds to the stable codes documented in docs/errors.md. */
function codeOf(e: ValueError): string {
  switch (e.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return 'required';
    case ValueErrorType.ObjectAdditionalProperties:
      return 'unknown_field';
    case ValueErrorType.Union:
    case ValueErrorType.Literal:
      return 'enum';
    case ValueErrorType.StringPattern:
      return 'pattern';
    case ValueErrorType.StringFormat:
    case ValueErrorType.StringFormatUnknown:
      return 'format';
    case ValueErrorType.StringMinLength:
    case ValueErrorType.ArrayMinItems:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return 'too_small';
    case ValueErrorType.StringMaxLength:
    case ValueErrorType.ArrayMaxItems:
    case ValueErrorType.ObjectMaxProperties:
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return 'too_large';
    default:
      return 'type';
  }
}

/** Turns the schema errors into field errors; an unknown field is reported at its own path. */
function schemaErrors(value: unknown, prefix: string): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of checker.Errors(value)) {
    let path = e.path;
    const code = codeOf(e);
    if (code === 'unknown_field' && e.value !== null && typeof e.value === 'object') {
      const allowed = new Set(Object.keys((e.schema as { properties?: object }).properties ?? {}));
      for (const k of Object.keys(e.value as object)) {
        if (!allowed.has(k)) pushUnique(out, seen, `${prefix}${path}/${k}`, code, `unknown field '${k}'`);
      }
      continue;
    }
    if (code === 'required') {
      // TypeBox reports a missing property at the property's own path.
      pushUnique(out, seen, `${prefix}${path}`, code, 'is required');
      continue;
    }
    // A type error on a missing required property is reported twice by TypeBox; keep the first.
    if (e.value === undefined && seen.has(`${prefix}${path}`)) continue;
    pushUnique(out, seen, `${prefix}${path}`, code, e.message);
    path = '';
  }
  return out;
}

function pushUnique(out: FieldError[], seen: Set<string>, path: string, code: string, message: string) {
  const k = `${path}\u0000${code}`;
  if (seen.has(k)) return;
  seen.add(k);
  seen.add(path);
  out.push({ path, code, message });
}

/** Rules across fields that the schema cannot express. */
function semanticErrors(d: Decision, prefix: string): FieldError[] {
  const out: FieldError[] = [];
  const needsOrder = d.type === 'trade' || d.type === 'hedge' || d.type === 'liquidate';
  if (needsOrder) {
    for (const f of ['side', 'quantity', 'orderType'] as const) {
      if (d[f] === undefined)
        out.push({ path: `${prefix}/${f}`, code: 'required', message: `is required for type '${d.type}'` });
    }
  }
  if ((d.orderType === 'limit' || d.orderType === 'stop_limit') && d.limitPrice === undefined) {
    out.push({
      path: `${prefix}/limitPrice`,
      code: 'required',
      message: `is required for orderType '${d.orderType}'`,
    });
  }
  if (d.orderType === 'market' && d.limitPrice !== undefined) {
    out.push({
      path: `${prefix}/limitPrice`,
      code: 'not_allowed',
      message: "must be absent for orderType 'market'",
    });
  }
  if (d.quantity !== undefined && /^0(\.0*)?$/.test(d.quantity)) {
    out.push({ path: `${prefix}/quantity`, code: 'too_small', message: 'must be greater than zero' });
  }
  return out;
}

/** Validates one decision; returns its field errors (paths prefixed with `prefix`), empty when valid. */
export function decisionErrors(value: unknown, prefix = ''): FieldError[] {
  if (checker.Check(value)) return semanticErrors(value, prefix);
  return schemaErrors(value, prefix);
}

/** Type guard form of {@link decisionErrors} for callers that need no details. */
export function isValidDecision(value: unknown): value is Decision {
  return checker.Check(value) && semanticErrors(value, '').length === 0;
}
