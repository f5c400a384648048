/**
 * Routing rules as data (DESIGN 4): ordered rules, each a CEL condition, destination topic templates
 * and actions, plus a default route. A rule set is validated whole (every error, with its path) and
 * compiled into an immutable object whose `route` runs once per decision at ingest.
 */
import { validationError, type FieldError } from '../errors/index.ts';
import { topicErrors } from '../domain/topics.ts';
import { tryAnalyseFilter, type AnalysedFilter } from './filter-analysis.ts';
import { TermIndex, type CompiledTerm } from './term-index.ts';
import { compileTemplate, templateErrors, type CompiledTemplate } from './template.ts';

/** The default route when a rule set names none. */
export const DEFAULT_ROUTE = 'decisions.{instrument.assetClass}.{portfolioId}';
/** The default ordering-key template (DESIGN 3: the key is the portfolioId unless a rule sets it). */
export const DEFAULT_KEY = '{portfolioId}';
/** Most rules a set may hold. */
export const MAX_RULES = 10_000;

/** What a rule does besides adding topics. */
export interface RuleActions {
  /** New priority, 0-9. */
  readonly setPriority?: number;
  /** Template of the new ordering key. */
  readonly setKey?: string;
  /** Drop the decision: it gets no topics; evaluation ends. */
  readonly drop?: boolean;
  /** Send the decision to this topic only; evaluation ends. */
  readonly quarantine?: string;
  /** Hold delivery until this RFC 3339 time. */
  readonly holdUntil?: string;
  /** Hold delivery for this many milliseconds after routing. */
  readonly delayMs?: number;
}

/** A routing rule as an operator writes it. */
export interface RuleInput {
  /** Unique id in its set. */
  readonly id: string;
  /** CEL condition over `decision`. */
  readonly condition: string;
  /** Destination topic templates; may be empty only when the rule has actions. */
  readonly topics?: readonly string[];
  readonly actions?: RuleActions;
  /** End evaluation after this rule when it matches (default false: go on). */
  readonly stop?: boolean;
}

/** A rule set as an operator writes it. */
export interface RuleSetInput {
  /** Rules in evaluation order. */
  readonly rules: readonly RuleInput[];
  /** Template of the topic used when no matching rule gave topics; DEFAULT_ROUTE if absent. */
  readonly defaultRoute?: string;
}

/** A problem met while routing one decision; the decision is still routed. */
export interface RouteError {
  readonly ruleId: string;
  /** What failed: the condition's evaluation, one of its topic templates, or its key template. */
  readonly kind: 'condition' | 'topic' | 'key';
  readonly message: string;
}

/** Where routing sends a decision. */
export interface RouteOutcome {
  /** Topics, deduplicated, in rule order; the default topic when no rule gave any; empty when dropped. */
  readonly topics: string[];
  /** The default route's topic (publish scopes are checked against it, DESIGN 4). */
  readonly defaultTopic: string;
  /** Ordering key. */
  readonly key: string;
  /** Priority after actions. */
  readonly priority: number;
  /** Ids of the rules whose condition held, in order. */
  readonly matchedRules: string[];
  readonly dropped?: true;
  /** Quarantine topic, when a rule quarantined the decision. */
  readonly quarantined?: string;
  /** RFC 3339 time before which the decision is not delivered (the latest of all hold actions). */
  readonly holdUntil?: string;
  readonly errors?: RouteError[];
}

/** A validated, immutable rule set. */
export interface CompiledRuleSet {
  /** Number of rules. */
  readonly size: number;
  /** Rules whose condition has an index term (skipped without CEL when the term does not match). */
  readonly indexedRules: number;
  /** Routes one decision; `now` (ms since the epoch) is the base of `delayMs`. Throws VALIDATION_FAILED only when the default route cannot be rendered. */
  route(decision: unknown, now?: number): RouteOutcome;
}

interface Rule {
  readonly index: number;
  readonly id: string;
  readonly filter: AnalysedFilter;
  otherTerms: readonly CompiledTerm[];
  readonly topics: readonly CompiledTemplate[];
  readonly setPriority: number | undefined;
  readonly setKey: CompiledTemplate | undefined;
  readonly drop: boolean;
  readonly quarantine: string | undefined;
  readonly holdUntilMs: number | undefined;
  readonly delayMs: number | undefined;
  readonly stop: boolean;
}

const RULE_KEYS = new Set(['id', 'condition', 'topics', 'actions', 'stop']);
const ACTION_KEYS = new Set(['setPriority', 'setKey', 'drop', 'quarantine', 'holdUntil', 'delayMs']);
const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function unknownKeys(
  v: Record<string, unknown>,
  allowed: Set<string>,
  path: string,
  errors: FieldError[],
): void {
  for (const k of Object.keys(v)) {
    if (!allowed.has(k))
      errors.push({ path: `${path}/${k}`, code: 'unknown_field', message: `'${k}' is not a field here` });
  }
}

function compileRule(
  input: unknown,
  index: number,
  seen: Set<string>,
  errors: FieldError[],
): Rule | undefined {
  const at = `/rules/${index}`;
  const before = errors.length;
  if (!isObject(input)) {
    errors.push({ path: at, code: 'type', message: 'a rule is an object' });
    return undefined;
  }
  unknownKeys(input, RULE_KEYS, at, errors);
  const id = input.id;
  if (typeof id !== 'string' || !ID.test(id)) {
    errors.push({
      path: `${at}/id`,
      code: 'pattern',
      message: 'an id has 1-128 characters A-Z a-z 0-9 . _ : - and starts with a letter or digit',
    });
  } else if (seen.has(id)) {
    errors.push({ path: `${at}/id`, code: 'duplicate', message: `rule id '${id}' appears twice` });
  } else seen.add(id);

  let filter: AnalysedFilter | undefined;
  if (typeof input.condition !== 'string') {
    errors.push({ path: `${at}/condition`, code: 'required', message: 'a rule needs a CEL condition' });
  } else {
    const f = tryAnalyseFilter(input.condition, `${at}/condition`);
    if ('code' in f) errors.push(f);
    else filter = f;
  }

  const actions = input.actions;
  if (actions !== undefined && !isObject(actions)) {
    errors.push({ path: `${at}/actions`, code: 'type', message: 'actions is an object' });
  }
  const a: Record<string, unknown> = isObject(actions) ? actions : {};
  if (isObject(actions)) unknownKeys(actions, ACTION_KEYS, `${at}/actions`, errors);
  const hasAction = Object.keys(a).length > 0;

  const topicsIn = input.topics;
  const topics: CompiledTemplate[] = [];
  if (topicsIn === undefined || (Array.isArray(topicsIn) && topicsIn.length === 0)) {
    if (!hasAction) {
      errors.push({
        path: `${at}/topics`,
        code: 'required',
        message: 'a rule without actions needs at least one topic',
      });
    }
  } else if (!Array.isArray(topicsIn)) {
    errors.push({ path: `${at}/topics`, code: 'type', message: 'topics is an array of topic templates' });
  } else {
    topicsIn.forEach((t: unknown, i) => {
      const e = templateErrors(t as string, `${at}/topics/${i}`);
      if (e.length > 0) errors.push(...e);
      else topics.push(compileTemplate(t as string));
    });
  }

  const sp = a.setPriority;
  if (sp !== undefined && (!Number.isInteger(sp) || (sp as number) < 0 || (sp as number) > 9)) {
    errors.push({
      path: `${at}/actions/setPriority`,
      code: 'range',
      message: 'setPriority is an integer 0-9',
    });
  }
  let setKey: CompiledTemplate | undefined;
  if (a.setKey !== undefined) {
    const e = templateErrors(a.setKey as string, `${at}/actions/setKey`);
    if (e.length > 0) errors.push(...e);
    else setKey = compileTemplate(a.setKey as string);
  }
  if (a.drop !== undefined && typeof a.drop !== 'boolean') {
    errors.push({ path: `${at}/actions/drop`, code: 'type', message: 'drop is a boolean' });
  }
  if (a.quarantine !== undefined) {
    if (typeof a.quarantine !== 'string') {
      errors.push({ path: `${at}/actions/quarantine`, code: 'type', message: 'quarantine is a topic name' });
    } else errors.push(...topicErrors(a.quarantine, `${at}/actions/quarantine`));
  }
  if (a.drop === true && a.quarantine !== undefined) {
    errors.push({
      path: `${at}/actions`,
      code: 'conflict',
      message: 'a rule either drops or quarantines, not both',
    });
  }
  let holdUntilMs: number | undefined;
  if (a.holdUntil !== undefined) {
    holdUntilMs =
      typeof a.holdUntil === 'string' && RFC3339.test(a.holdUntil) ? Date.parse(a.holdUntil) : NaN;
    if (Number.isNaN(holdUntilMs)) {
      errors.push({
        path: `${at}/actions/holdUntil`,
        code: 'format',
        message: 'holdUntil is an RFC 3339 time with a zone',
      });
    }
  }
  const dm = a.delayMs;
  if (dm !== undefined && (!Number.isSafeInteger(dm) || (dm as number) < 0)) {
    errors.push({
      path: `${at}/actions/delayMs`,
      code: 'range',
      message: 'delayMs is a non-negative integer',
    });
  }
  if (a.holdUntil !== undefined && dm !== undefined) {
    errors.push({ path: `${at}/actions`, code: 'conflict', message: 'give holdUntil or delayMs, not both' });
  }
  if (input.stop !== undefined && typeof input.stop !== 'boolean') {
    errors.push({ path: `${at}/stop`, code: 'type', message: 'stop is a boolean' });
  }
  if (errors.length > before || filter === undefined) return undefined;
  return {
    index,
    id: id as string,
    filter,
    otherTerms: filter.indexable,
    topics,
    setPriority: sp as number | undefined,
    setKey,
    drop: a.drop === true,
    quarantine: a.quarantine as string | undefined,
    holdUntilMs,
    delayMs: dm as number | undefined,
    stop: input.stop === true,
  };
}

/** Validates a whole rule set and compiles it; VALIDATION_FAILED lists every error (paths like `/rules/3/condition`). */
export function compileRuleSet(input: RuleSetInput): CompiledRuleSet {
  const errors: FieldError[] = [];
  const rules: Rule[] = [];
  if (!isObject(input))
    throw validationError('a rule set is an object', [
      { path: '', code: 'type', message: 'expected an object' },
    ]);
  unknownKeys(input, new Set(['rules', 'defaultRoute']), '', errors);
  if (!Array.isArray(input.rules)) {
    errors.push({ path: '/rules', code: 'required', message: 'rules is an array (it may be empty)' });
  } else if (input.rules.length > MAX_RULES) {
    errors.push({ path: '/rules', code: 'max_items', message: `at most ${MAX_RULES} rules` });
  } else {
    const seen = new Set<string>();
    input.rules.forEach((r: unknown, i) => {
      const c = compileRule(r, i, seen, errors);
      if (c !== undefined) rules.push(c);
    });
  }
  const route = input.defaultRoute ?? DEFAULT_ROUTE;
  errors.push(...templateErrors(route, '/defaultRoute'));
  if (errors.length > 0) throw validationError('invalid rule set', errors);
  return build(rules, compileTemplate(route), compileTemplate(DEFAULT_KEY));
}

/** Sorts the first `count` rule indexes in place (usually 0-3 candidates: insertion sort, no comparator calls). */
function sortSmall(xs: number[], count: number): void {
  if (count > 16) {
    const head = xs.slice(0, count).sort((x, y) => x - y);
    for (let i = 0; i < count; i++) xs[i] = head[i] as number;
    return;
  }
  for (let i = 1; i < count; i++) {
    const v = xs[i] as number;
    let k = i - 1;
    while (k >= 0 && (xs[k] as number) > v) {
      xs[k + 1] = xs[k] as number;
      k--;
    }
    xs[k + 1] = v;
  }
}

function build(
  rules: readonly Rule[],
  defaultRoute: CompiledTemplate,
  defaultKey: CompiledTemplate,
): CompiledRuleSet {
  const index = new TermIndex<number>();
  const unindexed: number[] = [];
  for (const r of rules) {
    const filed = index.add(r.index, r.filter.indexable);
    if (filed === undefined) unindexed.push(r.index);
    else r.otherTerms = r.filter.indexable.filter((t) => t !== filed);
    Object.freeze(r);
  }
  Object.freeze(rules);
  // Reused by every call of `route`, which runs to completion without re-entering itself.
  const found: number[] = [];

  function route(decision: unknown, now: number = Date.now()): RouteOutcome {
    const defaultTopic = defaultRoute.render(decision);
    const topics: string[] = [];
    const matchedRules: string[] = [];
    let errors: RouteError[] | undefined;
    let key: string | undefined;
    let priority = (decision as { priority?: unknown }).priority as number;
    let dropped = false;
    let quarantined: string | undefined;
    let holdMs: number | undefined;
    const count = index.collectInto(decision, found);
    sortSmall(found, count);
    // Indexed candidates and unindexed rules, merged in rule order without building a list.
    let i = 0;
    let j = 0;
    for (;;) {
      const fi = i < count ? (found[i] as number) : Infinity;
      const uj = j < unindexed.length ? (unindexed[j] as number) : Infinity;
      if (fi === Infinity && uj === Infinity) break;
      let n: number;
      if (fi < uj) {
        n = fi;
        i++;
      } else {
        n = uj;
        j++;
      }
      const rule = rules[n] as Rule;
      const other = rule.otherTerms;
      let ok = true;
      for (let t = 0; t < other.length && ok; t++) ok = (other[t] as CompiledTerm).holds(decision);
      if (!ok) continue;
      const rem = rule.filter.remainder;
      if (rem !== null) {
        const r = rem.outcome(decision);
        if (r !== true) {
          if (r !== false) (errors ??= []).push({ ruleId: rule.id, kind: 'condition', message: r.error });
          continue;
        }
      }
      matchedRules.push(rule.id);
      for (const t of rule.topics) {
        const s = t.tryRender(decision);
        if (typeof s !== 'string')
          (errors ??= []).push({ ruleId: rule.id, kind: 'topic', message: `${t.source}: ${s.message}` });
        else if (!topics.includes(s)) topics.push(s);
      }
      if (rule.setPriority !== undefined) priority = rule.setPriority;
      if (rule.setKey !== undefined) {
        const k = rule.setKey.tryRender(decision);
        if (typeof k === 'string') key = k;
        else
          (errors ??= []).push({
            ruleId: rule.id,
            kind: 'key',
            message: `${rule.setKey.source}: ${k.message}`,
          });
      }
      const hold = rule.holdUntilMs ?? (rule.delayMs === undefined ? undefined : now + rule.delayMs);
      if (hold !== undefined && (holdMs === undefined || hold > holdMs)) holdMs = hold;
      if (rule.drop) {
        dropped = true;
        break;
      }
      if (rule.quarantine !== undefined) {
        quarantined = rule.quarantine;
        break;
      }
      if (rule.stop) break;
    }
    const out: {
      -readonly [K in keyof RouteOutcome]: RouteOutcome[K];
    } = {
      topics: dropped
        ? []
        : quarantined !== undefined
          ? [quarantined]
          : topics.length > 0
            ? topics
            : [defaultTopic],
      defaultTopic,
      key: key ?? defaultKey.render(decision),
      priority,
      matchedRules,
    };
    if (dropped) out.dropped = true;
    if (quarantined !== undefined) out.quarantined = quarantined;
    if (holdMs !== undefined) out.holdUntil = new Date(holdMs).toISOString();
    if (errors !== undefined) out.errors = errors;
    return out;
  }

  return Object.freeze({ size: rules.length, indexedRules: rules.length - unindexed.length, route });
}
