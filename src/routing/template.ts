/**
 * Topic templates such as `decisions.{instrument.assetClass}.{portfolioId}` (DESIGN 4): parsed and
 * checked against the Decision schema once, then rendered per decision by a closure over the parts.
 */
import { CdsError, validationError, type FieldError } from '../errors/index.ts';
import { decisionFieldKind, fieldGetter, type FieldGetter } from './field-path.ts';

/** A compiled topic (or key) template. */
export interface CompiledTemplate {
  /** The template text as given. */
  readonly source: string;
  /** Field paths it reads, dotted (for example `instrument.assetClass`). */
  readonly fields: readonly string[];
  /** Renders the topic; throws VALIDATION_FAILED naming the decision field whose value is not a topic token. */
  render(decision: unknown): string;
  /** Renders the topic, or returns the field error instead of throwing (for the hot path). */
  tryRender(decision: unknown): string | FieldError;
}

type Part = string | { readonly getter: FieldGetter; readonly path: string };

const LITERAL = /^[A-Za-z0-9_-]*$/;
const SEGMENT = /^[A-Za-z0-9_-]+$/;
const MAX_TOPIC = 255;

/** Field errors of a template (empty when it compiles); `path` is where the template sits in the input. */
export function templateErrors(source: string, path = ''): FieldError[] {
  const r = parse(source, path);
  return Array.isArray(r) ? r : [];
}

/** Compiles a template once; refuses it with VALIDATION_FAILED listing every problem. */
export function compileTemplate(source: string, path = ''): CompiledTemplate {
  const r = parse(source, path);
  if (Array.isArray(r)) throw validationError(`invalid topic template '${source}'`, r);
  return r;
}

function parse(source: string, path: string): FieldError[] | CompiledTemplate {
  const errors: FieldError[] = [];
  const err = (code: string, message: string) => errors.push({ path, code, message });
  if (typeof source !== 'string' || source.length === 0 || source.length > MAX_TOPIC) {
    err('invalid_template', `a template is a string of 1 to ${MAX_TOPIC} characters`);
    return errors;
  }
  // Tokens are split on '.' outside braces; each token is a list of literal and field parts.
  const tokens: Part[][] = [[]];
  let literal = '';
  const flush = () => {
    if (literal.length > 0) (tokens[tokens.length - 1] as Part[]).push(literal);
    literal = '';
  };
  const fields: string[] = [];
  for (let i = 0; i < source.length; i++) {
    const ch = source[i] as string;
    if (ch === '{') {
      const close = source.indexOf('}', i + 1);
      const open = source.indexOf('{', i + 1);
      if (close < 0 || (open >= 0 && open < close)) {
        err('unbalanced_braces', `'{' at offset ${i} has no matching '}'`);
        return errors;
      }
      flush();
      const field = source.slice(i + 1, close);
      const segs = field.split('.');
      if (field.length === 0 || !segs.every((s) => SEGMENT.test(s))) {
        err('invalid_field', `'{${field}}' at offset ${i} is not a dotted field path`);
      } else {
        const kind = decisionFieldKind(segs);
        if (kind === 'unknown') err('unknown_field', `'${field}' is not a field of the decision schema`);
        else if (kind !== 'scalar') err('not_scalar', `'${field}' is an ${kind}, not a single value`);
        else {
          (tokens[tokens.length - 1] as Part[]).push({ getter: fieldGetter(segs), path: field });
          fields.push(field);
        }
      }
      i = close;
    } else if (ch === '}') {
      err('unbalanced_braces', `'}' at offset ${i} has no matching '{'`);
      return errors;
    } else if (ch === '.') {
      flush();
      tokens.push([]);
    } else literal += ch;
  }
  flush();
  if (errors.length > 0) return errors;
  tokens.forEach((parts, n) => {
    if (parts.length === 0) err('invalid_token', `token ${n + 1} is empty`);
    for (const p of parts) {
      if (p === '*' || p === '>')
        err('invalid_token', `token ${n + 1} is '${p}': a template names a topic, not a pattern`);
      else if (typeof p === 'string' && !LITERAL.test(p)) {
        err('invalid_token', `token ${n + 1} has '${p}': only A-Z a-z 0-9 _ - and {field} are allowed`);
      }
    }
  });
  if (errors.length > 0) return errors;
  return build(source, tokens, fields);
}

function valueError(field: string, v: unknown): FieldError {
  const path = `/${field.split('.').join('/')}`;
  if (v === undefined || v === null) {
    return { path, code: 'missing_field', message: `the topic template needs '${field}', which is absent` };
  }
  return {
    path,
    code: 'invalid_topic_token',
    message: `'${field}' is ${JSON.stringify(v)}, not a topic token (A-Z a-z 0-9 _ -, no '.')`,
  };
}

/** Whether `s` is a topic token (one or more of A-Z a-z 0-9 _ -): a character loop, cheaper than a regex per value. */
function isToken(s: string): boolean {
  const n = s.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    // 0-9, A-Z, a-z, '_', '-'
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45))
      return false;
  }
  return true;
}

function tokenOf(v: unknown): string | undefined {
  const s =
    typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
  return s !== undefined && isToken(s) ? s : undefined;
}

function build(source: string, tokens: Part[][], fields: string[]): CompiledTemplate {
  // One flat list: literal text (dots included) and fields, so rendering is a single loop.
  const flat: Part[] = [];
  tokens.forEach((parts, n) => {
    if (n > 0) flat.push('.');
    for (const p of parts) {
      const last = flat[flat.length - 1];
      if (typeof p === 'string' && typeof last === 'string') flat[flat.length - 1] = last + p;
      else flat.push(p);
    }
  });
  const tryRender = (decision: unknown): string | FieldError => {
    let s = '';
    for (let i = 0; i < flat.length; i++) {
      const p = flat[i] as Part;
      if (typeof p === 'string') s += p;
      else {
        const v = p.getter(decision);
        const t = tokenOf(v);
        if (t === undefined) return valueError(p.path, v);
        s += t;
      }
    }
    if (s.length > MAX_TOPIC) {
      return {
        path: '',
        code: 'invalid_topic',
        message: `the rendered topic has ${s.length} characters (at most ${MAX_TOPIC})`,
      };
    }
    return s;
  };
  return Object.freeze({
    source,
    fields: Object.freeze(fields),
    tryRender,
    render(decision: unknown): string {
      const r = tryRender(decision);
      if (typeof r === 'string') return r;
      throw new CdsError('VALIDATION_FAILED', `cannot render topic template '${source}': ${r.message}`, {
        details: { errors: [r], template: source },
      });
    },
  });
}
