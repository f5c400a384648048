/**
 * Rule-set versions as the service compiles them (ADR 0013): parsing of a POST /v1/routes body and
 * compilation into a route function that stamps the version on every outcome.
 */
import type { Decision } from '../domain/decision.ts';
import { CdsError, validationError, type FieldError } from '../errors/index.ts';
import { fieldGetter } from './field-path.ts';
import {
  compileRuleSet,
  type CompiledRuleSet,
  type RouteOutcome,
  type RuleInput,
  type RuleSetInput,
} from './rules.ts';

/** A routing outcome with the version of the rule set that produced it (recorded at ingest). */
export interface VersionedOutcome extends RouteOutcome {
  readonly ruleSet: number;
}

/** Routes one valid decision with one captured rule set; throws VALIDATION_FAILED like CompiledRuleSet.route. */
export type VersionedRoute = (d: Decision) => VersionedOutcome;

/** What the service takes from the configuration. */
export interface RuleSetServiceOptions {
  /** The default route of version 0 and of sets that name none (ingest.topicTemplate). */
  readonly topicTemplate: string;
  /** The decision field that is the ordering key unless a rule sets it (ingest.keyField). */
  readonly keyField: string;
}

/** A compiled version. */
export interface LoadedRuleSet {
  readonly version: number;
  readonly input: RuleSetInput;
  readonly compiled: CompiledRuleSet;
  readonly route: VersionedRoute;
  readonly rules: ReadonlyMap<string, { readonly index: number; readonly rule: RuleInput }>;
}

const BODY_KEYS = new Set(['rules', 'defaultRoute', 'comment', 'activate', 'ifActive']);

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Whether a value is a plain JSON object. */
export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses a POST /v1/routes body (or a dry-run's `ruleSet`); every error at once, with its path. */
export function parseRuleSetBody(
  body: unknown,
  topicTemplate: string,
  at = '',
): { input: RuleSetInput; comment?: string; activate: boolean; ifActive?: number } {
  if (!isObject(body))
    throw validationError('a rule set is an object', [
      { path: at, code: 'type', message: 'expected an object' },
    ]);
  const errors: FieldError[] = [];
  for (const k of Object.keys(body))
    if (!BODY_KEYS.has(k) || (at !== '' && k !== 'rules' && k !== 'defaultRoute'))
      errors.push({ path: `${at}/${k}`, code: 'unknown_field', message: `'${k}' is not a field here` });
  if (body.comment !== undefined && (typeof body.comment !== 'string' || body.comment.length > 1000))
    errors.push({
      path: `${at}/comment`,
      code: 'type',
      message: 'comment is a string of at most 1000 characters',
    });
  if (body.activate !== undefined && typeof body.activate !== 'boolean')
    errors.push({ path: `${at}/activate`, code: 'type', message: 'activate is a boolean' });
  if (body.ifActive !== undefined && (!Number.isSafeInteger(body.ifActive) || (body.ifActive as number) < 0))
    errors.push({ path: `${at}/ifActive`, code: 'type', message: 'ifActive is a version number' });
  if (body.defaultRoute !== undefined && typeof body.defaultRoute !== 'string')
    errors.push({ path: `${at}/defaultRoute`, code: 'type', message: 'defaultRoute is a topic template' });
  // An explicit empty destination list is a mistake; an actions-only rule omits `topics`.
  if (Array.isArray(body.rules))
    body.rules.forEach((r: unknown, i) => {
      if (isObject(r) && Array.isArray(r.topics) && r.topics.length === 0)
        errors.push({
          path: `${at}/rules/${i}/topics`,
          code: 'too_small',
          message:
            'an empty destination list; give at least one topic, or omit topics for a rule with actions only',
        });
    });
  if (errors.length > 0) throw validationError('invalid rule set', errors);
  const input: RuleSetInput = {
    rules: body.rules as RuleInput[],
    defaultRoute: (body.defaultRoute as string | undefined) ?? topicTemplate,
  };
  return {
    input,
    ...(body.comment === undefined ? {} : { comment: body.comment as string }),
    activate: body.activate !== false,
    ...(body.ifActive === undefined ? {} : { ifActive: body.ifActive as number }),
  };
}

/** Compiles a set (VALIDATION_FAILED with every error, paths under `at`) into its route function. */
export function loadRuleSet(
  version: number,
  input: RuleSetInput,
  opts: RuleSetServiceOptions,
  at = '',
): LoadedRuleSet {
  let compiled: CompiledRuleSet;
  try {
    compiled = compileRuleSet(input);
  } catch (e) {
    if (at !== '' && e instanceof CdsError && Array.isArray(e.details?.['errors']))
      throw validationError(
        e.message,
        (e.details['errors'] as FieldError[]).map((f) => ({ ...f, path: `${at}${f.path}` })),
      );
    throw e;
  }
  const rules = new Map<string, { index: number; rule: RuleInput }>();
  input.rules.forEach((rule, index) => rules.set(rule.id, { index, rule }));
  const setsKey = new Set(input.rules.filter((r) => r.actions?.setKey !== undefined).map((r) => r.id));
  let route: VersionedRoute;
  if (opts.keyField === 'portfolioId') {
    // The outcome is a fresh object of this call: stamping the version on it costs no copy.
    route = (d) => {
      const o = compiled.route(d) as Mutable<VersionedOutcome>;
      o.ruleSet = version;
      return o;
    };
  } else {
    // The rule engine's default key is the portfolioId; the configured key field replaces it unless
    // a matched rule set the key.
    const keyPath = opts.keyField.split('.');
    const keyOf = fieldGetter(keyPath);
    route = (d) => {
      const o = compiled.route(d) as Mutable<VersionedOutcome>;
      o.ruleSet = version;
      const byRule = o.matchedRules.some(
        (id) => setsKey.has(id) && !(o.errors ?? []).some((e) => e.ruleId === id && e.kind === 'key'),
      );
      if (byRule) return o;
      const k = keyOf(d);
      if (typeof k !== 'string' || k.length === 0)
        throw validationError(`the ordering key field ${opts.keyField} is empty`, [
          {
            path: `/${keyPath.join('/')}`,
            code: 'required',
            message: 'is the ordering key and must be a non-empty string',
          },
        ]);
      o.key = k;
      return o;
    };
  }
  return { version, input, compiled, route, rules };
}
