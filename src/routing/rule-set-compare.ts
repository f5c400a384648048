/**
 * Dry-runs (ADR 0013): the request's parsing, the outcome of a decision under a compiled version as
 * the API shows it, the differences between two outcomes, and the changes between two sets (audit).
 */
import type { Decision } from '../domain/decision.ts';
import { decisionErrors } from '../domain/validate.ts';
import { CdsError, validationError, type FieldError } from '../errors/index.ts';
import {
  isObject,
  loadRuleSet,
  parseRuleSetBody,
  type LoadedRuleSet,
  type RuleSetServiceOptions,
} from './rule-set-load.ts';
import type { RuleSetInput } from './rules.ts';

/** An outcome as dry-runs and explanations show it. */
export type OutcomeView =
  | {
      readonly topics: readonly string[];
      readonly key: string;
      readonly priority: number;
      readonly matchedRules: readonly string[];
      readonly dropped?: true;
      readonly quarantined?: string;
      readonly holdUntil?: string;
      readonly errors?: readonly unknown[];
    }
  | { readonly refused: { readonly message: string; readonly errors: readonly FieldError[] } };

/** One difference between the active and the candidate outcome. */
export interface OutcomeDifference {
  readonly field: string;
  readonly active: unknown;
  readonly candidate: unknown;
  readonly added?: readonly string[];
  readonly removed?: readonly string[];
}

/** A time range of recorded decisions for a dry-run. */
export interface RecordedRange {
  /** ms since the epoch, inclusive. */
  readonly from: number;
  /** ms since the epoch, exclusive. */
  readonly to: number;
  readonly limit: number;
}

/** A parsed dry-run request: the candidate (compiled, or a stored version to load) and the decisions. */
export interface TestRequest {
  readonly candidate?: LoadedRuleSet;
  readonly version?: number;
  readonly samples: Decision[];
  readonly range?: RecordedRange;
}

const MAX_SAMPLES = 1000;
const TEST_KEYS = new Set(['ruleSet', 'version', 'decisions', 'from', 'to', 'limit']);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

/** Parses a POST /v1/routes:test body; VALIDATION_FAILED lists every error with its path. */
export function parseTestRequest(body: unknown, opts: RuleSetServiceOptions): TestRequest {
  if (!isObject(body))
    throw validationError('the body is an object', [
      { path: '', code: 'type', message: 'expected an object' },
    ]);
  const errors: FieldError[] = [];
  for (const k of Object.keys(body))
    if (!TEST_KEYS.has(k))
      errors.push({ path: `/${k}`, code: 'unknown_field', message: `'${k}' is not a field here` });
  const hasSet = body.ruleSet !== undefined;
  const hasVersion = body.version !== undefined;
  if (hasSet === hasVersion)
    errors.push({
      path: '/ruleSet',
      code: 'required',
      message: 'give the candidate as ruleSet or as a stored version, one of them',
    });
  if (hasVersion && (!Number.isSafeInteger(body.version) || (body.version as number) < 0))
    errors.push({ path: '/version', code: 'type', message: 'version is a non-negative integer' });
  const hasSamples = body.decisions !== undefined;
  const hasRange = body.from !== undefined || body.to !== undefined;
  if (hasSamples === hasRange)
    errors.push({
      path: '/decisions',
      code: 'required',
      message: 'give sample decisions or a time range (from, to), one of them',
    });
  const samples: Decision[] = [];
  if (hasSamples) {
    if (!Array.isArray(body.decisions) || body.decisions.length === 0 || body.decisions.length > MAX_SAMPLES)
      errors.push({
        path: '/decisions',
        code: 'too_small',
        message: `decisions is an array of 1-${MAX_SAMPLES} decisions`,
      });
    else
      body.decisions.forEach((d: unknown, i) => {
        const e = decisionErrors(d, `/decisions/${i}`);
        if (e.length > 0) errors.push(...e);
        else samples.push(d as Decision);
      });
  }
  let range: RecordedRange | undefined;
  if (hasRange) {
    const time = (k: 'from' | 'to', dflt: number | undefined): number => {
      const v = body[k];
      if (v === undefined && dflt !== undefined) return dflt;
      if (typeof v !== 'string' || !RFC3339.test(v) || Number.isNaN(Date.parse(v))) {
        errors.push({ path: `/${k}`, code: 'format', message: `${k} is an RFC 3339 time with a zone` });
        return 0;
      }
      return Date.parse(v);
    };
    const from = time('from', undefined);
    const to = time('to', Date.now() + 1);
    const limit = body.limit ?? 100;
    if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > MAX_SAMPLES)
      errors.push({ path: '/limit', code: 'range', message: `limit is an integer 1-${MAX_SAMPLES}` });
    if (from >= to && errors.length === 0)
      errors.push({ path: '/to', code: 'range', message: 'to is after from' });
    range = { from, to, limit: limit as number };
  } else if (body.limit !== undefined)
    errors.push({ path: '/limit', code: 'not_allowed', message: 'limit applies to a time range' });
  let candidate: LoadedRuleSet | undefined;
  if (hasSet && !hasVersion) {
    try {
      const parsed = parseRuleSetBody(body.ruleSet, opts.topicTemplate, '/ruleSet');
      candidate = loadRuleSet(-1, parsed.input, opts, '/ruleSet');
    } catch (e) {
      if (!(e instanceof CdsError) || !Array.isArray(e.details?.['errors'])) throw e;
      errors.push(...(e.details['errors'] as FieldError[]));
    }
  }
  if (errors.length > 0) throw validationError('invalid dry-run request', errors);
  return {
    ...(candidate === undefined ? { version: body.version as number } : { candidate }),
    samples,
    ...(range === undefined ? {} : { range }),
  };
}

export function outcomeView(l: LoadedRuleSet, d: Decision, now: number): OutcomeView {
  try {
    const o = l.compiled.route(d, now);
    let key = o.key;
    try {
      key = l.route(d).key;
    } catch {
      /* the configured key field is empty: the compiled key stands */
    }
    return {
      topics: o.topics,
      key,
      priority: o.priority,
      matchedRules: o.matchedRules,
      ...(o.dropped ? { dropped: true as const } : {}),
      ...(o.quarantined === undefined ? {} : { quarantined: o.quarantined }),
      ...(o.holdUntil === undefined ? {} : { holdUntil: o.holdUntil }),
      ...(o.errors === undefined ? {} : { errors: o.errors }),
    };
  } catch (e) {
    if (e instanceof CdsError && Array.isArray(e.details?.['errors']))
      return { refused: { message: e.message, errors: e.details['errors'] as FieldError[] } };
    throw e;
  }
}

/** Whether two string lists are equal, in order. */
export const same = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** The differences between the active and the candidate outcome, field by field. */
export function diff(a: OutcomeView, c: OutcomeView): OutcomeDifference[] {
  if ('refused' in a || 'refused' in c) {
    if ('refused' in a && 'refused' in c) return [];
    return [
      {
        field: 'refused',
        active: 'refused' in a ? a.refused : null,
        candidate: 'refused' in c ? c.refused : null,
      },
    ];
  }
  const out: OutcomeDifference[] = [];
  if (!same(a.topics, c.topics))
    out.push({
      field: 'topics',
      active: a.topics,
      candidate: c.topics,
      added: c.topics.filter((t) => !a.topics.includes(t)),
      removed: a.topics.filter((t) => !c.topics.includes(t)),
    });
  for (const f of ['key', 'priority', 'dropped', 'quarantined', 'holdUntil'] as const) {
    if (a[f] !== c[f]) out.push({ field: f, active: a[f] ?? null, candidate: c[f] ?? null });
  }
  if (!same(a.matchedRules, c.matchedRules))
    out.push({ field: 'matchedRules', active: a.matchedRules, candidate: c.matchedRules });
  return out;
}

/** What changed from one set to another, by rule id (for the audit trail). */
export function changes(before: RuleSetInput, after: RuleSetInput): Record<string, unknown> {
  const b = new Map(before.rules.map((r) => [r.id, JSON.stringify(r)]));
  const a = new Map(after.rules.map((r) => [r.id, JSON.stringify(r)]));
  const order = (x: RuleSetInput) => x.rules.map((r) => r.id).join(' ');
  return {
    added: [...a.keys()].filter((id) => !b.has(id)),
    removed: [...b.keys()].filter((id) => !a.has(id)),
    changed: [...a.keys()].filter((id) => b.has(id) && b.get(id) !== a.get(id)),
    reordered: order(before) !== order(after),
    ...(before.defaultRoute === after.defaultRoute
      ? {}
      : { defaultRoute: { from: before.defaultRoute, to: after.defaultRoute } }),
  };
}
