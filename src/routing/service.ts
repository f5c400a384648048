/**
 * Versioned routing rule sets (DESIGN 4; ADR 0013): the compiled active set that ingest routes with,
 * new versions (validated whole before anything is stored), atomic activation and rollback, audit,
 * dry-runs of a candidate beside the active set, and explanations of past routing outcomes.
 */
import type { Decision } from '../domain/decision.ts';
import { decisionErrors } from '../domain/validate.ts';
import { CdsError, validationError, type FieldError } from '../errors/index.ts';
import type { AuditTrail } from '../security/audit.ts';
import type { ActivePointer, RuleSetRecord, RuleStore } from '../state/rules-port.ts';
import { fieldGetter } from './field-path.ts';
import {
  compileRuleSet,
  type CompiledRuleSet,
  type RouteOutcome,
  type RuleInput,
  type RuleSetInput,
} from './rules.ts';
import { compileTemplate } from './template.ts';

/** A routing outcome with the version of the rule set that produced it (recorded at ingest). */
export interface VersionedOutcome extends RouteOutcome {
  readonly ruleSet: number;
}

/** Routes one valid decision with one captured rule set; throws VALIDATION_FAILED like CompiledRuleSet.route. */
export type VersionedRoute = (d: Decision) => VersionedOutcome;

/** A caller as the service sees it. */
export interface RulesCaller {
  readonly principalId: string;
}

/** What the API shows of one version. */
export interface RuleSetView {
  readonly version: number;
  readonly ruleSet: RuleSetInput;
  /** True for version 0, the set the configuration implies (no rules, the configured default route). */
  readonly builtIn?: true;
  readonly createdAt?: string;
  readonly createdBy?: string;
  readonly comment?: string;
  readonly active: boolean;
}

/** The active set as GET /v1/routes shows it. */
export interface ActiveView extends RuleSetView {
  readonly activatedAt: string | null;
  readonly activatedBy: string | null;
}

/** A recorded decision given to a dry-run or an explanation, with what ingest recorded for it. */
export interface RecordedDecision {
  readonly decision: Decision;
  readonly position: string;
  readonly receivedAt: string;
  readonly topics: readonly string[];
  readonly key: string;
  readonly priority: number;
  /** Rule-set version recorded at ingest (absent for decisions stored before rule sets existed). */
  readonly ruleSet?: number;
  /** Matched rule ids recorded at ingest. */
  readonly rules?: readonly string[];
  readonly holdUntil?: string;
  readonly quarantined?: string;
}

/** A time range of recorded decisions for a dry-run. */
export interface RecordedRange {
  /** ms since the epoch, inclusive. */
  readonly from: number;
  /** ms since the epoch, exclusive. */
  readonly to: number;
  readonly limit: number;
}

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

/** Options of the service. */
export interface RuleSetServiceOptions {
  /** The default route of version 0 and of sets that name none (ingest.topicTemplate). */
  readonly topicTemplate: string;
  /** The decision field that is the ordering key unless a rule sets it (ingest.keyField). */
  readonly keyField: string;
}

interface Loaded {
  readonly version: number;
  readonly input: RuleSetInput;
  readonly compiled: CompiledRuleSet;
  readonly route: VersionedRoute;
  readonly rules: ReadonlyMap<string, { readonly index: number; readonly rule: RuleInput }>;
}

const MAX_SAMPLES = 1000;
const CACHED_VERSIONS = 16;
const BODY_KEYS = new Set(['rules', 'defaultRoute', 'comment', 'activate', 'ifActive']);
const TEST_KEYS = new Set(['ruleSet', 'version', 'decisions', 'from', 'to', 'limit']);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Holds the active compiled rule set and manages versions. */
export class RuleSetService {
  #active: Loaded;
  #pointer: ActivePointer | undefined;
  readonly #cache = new Map<number, Loaded>();
  #serial: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly store: RuleStore,
    private readonly audit: AuditTrail,
    private readonly opts: RuleSetServiceOptions,
    active: Loaded,
    pointer: ActivePointer | undefined,
  ) {
    this.#active = active;
    this.#pointer = pointer;
  }

  /** Loads and compiles the active version (the built-in set when none was activated). */
  static async open(
    store: RuleStore,
    audit: AuditTrail,
    opts: RuleSetServiceOptions,
  ): Promise<RuleSetService> {
    const pointer = await store.active();
    const version = pointer?.version ?? 0;
    let input: RuleSetInput = { rules: [], defaultRoute: opts.topicTemplate };
    if (version !== 0) {
      const rec = await store.get(version);
      if (rec === undefined)
        throw new CdsError('DATA_CORRUPT', `the active rule set version ${version} is not stored`);
      input = rec.ruleSet as unknown as RuleSetInput;
    }
    const svc = new RuleSetService(store, audit, opts, load(version, input, opts), pointer);
    return svc;
  }

  /** Version of the set routing now. */
  get activeVersion(): number {
    return this.#active.version;
  }

  /**
   * The route function of the active set, captured now: a publish batch calls this once and routes
   * every item with the result, so a batch is never split across versions.
   */
  router(): VersionedRoute {
    return this.#active.route;
  }

  // ------------------------------------------------------------ versions

  /** The active set. */
  current(): ActiveView {
    const a = this.#active;
    return {
      ...this.#viewOf(a.version, a.input, undefined),
      activatedAt: this.#pointer?.activatedAt ?? null,
      activatedBy: this.#pointer?.activatedBy ?? null,
    };
  }

  /** Summaries of stored versions, newest first (version 0, the built-in set, is not listed). */
  async versions(opts: { before?: number; limit: number }): Promise<Omit<RuleSetView, 'ruleSet'>[]> {
    const list = await this.store.list(opts);
    return list.map((r) => {
      const { ruleSet, ...rest } = this.#viewOf(r.version, r.ruleSet as unknown as RuleSetInput, r);
      return { ...rest, rules: ruleSet.rules.length };
    });
  }

  /** One version (0 is the built-in set); NOT_FOUND when unknown. */
  async version(v: number): Promise<RuleSetView> {
    if (v === 0) return this.#viewOf(0, this.#builtIn(), undefined);
    const rec = await this.store.get(v);
    if (rec === undefined) throw new CdsError('NOT_FOUND', `no rule set version ${v}`);
    return this.#viewOf(v, rec.ruleSet as unknown as RuleSetInput, rec);
  }

  /**
   * Creates a version from a POST body (`rules`, `defaultRoute`, `comment`, `activate` default true,
   * `ifActive`): validated whole first, so an invalid set is never stored nor activated; stored and
   * (by default) activated in one durable write; then swapped in for the next publish batch; audited.
   */
  create(body: unknown, caller: RulesCaller): Promise<RuleSetView> {
    const parsed = parseCreate(body, this.opts.topicTemplate);
    return this.#run(async () => {
      if (parsed.ifActive !== undefined && parsed.ifActive !== this.#active.version)
        throw new CdsError(
          'VERSION_CONFLICT',
          `the active rule set is version ${this.#active.version}, not ${parsed.ifActive}`,
        );
      const loaded = load((await this.store.latest()) + 1, parsed.input, this.opts);
      const at = new Date().toISOString();
      const rec: RuleSetRecord = {
        version: loaded.version,
        ruleSet: parsed.input as unknown as Record<string, unknown>,
        createdAt: at,
        createdBy: caller.principalId,
        ...(parsed.comment === undefined ? {} : { comment: parsed.comment }),
      };
      const pointer: ActivePointer = {
        version: loaded.version,
        activatedAt: at,
        activatedBy: caller.principalId,
      };
      const previous = this.#active;
      await this.store.create(rec, parsed.activate ? pointer : undefined);
      this.#remember(loaded);
      if (parsed.activate) {
        this.#active = loaded;
        this.#pointer = pointer;
      }
      await this.audit.append({
        actor: caller.principalId,
        action: 'rules.create',
        target: `v${loaded.version}`,
        details: {
          version: loaded.version,
          activated: parsed.activate,
          previousActive: previous.version,
          ...(parsed.comment === undefined ? {} : { comment: parsed.comment }),
          changes: changes(previous.input, parsed.input),
        },
      });
      return this.#viewOf(loaded.version, parsed.input, rec);
    });
  }

  /** Activates a stored version (a rollback when it is older); NOT_FOUND when unknown; audited. */
  activate(v: number, body: unknown, caller: RulesCaller): Promise<ActiveView> {
    let ifActive: number | undefined;
    if (body !== undefined) {
      if (!isObject(body))
        throw validationError('the body is an object', [
          { path: '', code: 'type', message: 'expected an object' },
        ]);
      const errors: FieldError[] = [];
      for (const k of Object.keys(body))
        if (k !== 'ifActive')
          errors.push({ path: `/${k}`, code: 'unknown_field', message: `'${k}' is not a field here` });
      if (body.ifActive !== undefined && !Number.isSafeInteger(body.ifActive))
        errors.push({ path: '/ifActive', code: 'type', message: 'ifActive is a version number' });
      if (errors.length > 0) throw validationError('invalid activation', errors);
      ifActive = body.ifActive as number | undefined;
    }
    return this.#run(async () => {
      const loaded = await this.#load(v);
      if (ifActive !== undefined && ifActive !== this.#active.version)
        throw new CdsError(
          'VERSION_CONFLICT',
          `the active rule set is version ${this.#active.version}, not ${ifActive}`,
        );
      const pointer: ActivePointer = {
        version: v,
        activatedAt: new Date().toISOString(),
        activatedBy: caller.principalId,
      };
      const previous = this.#active;
      await this.store.activate(pointer, previous.version);
      this.#active = loaded;
      this.#pointer = pointer;
      await this.audit.append({
        actor: caller.principalId,
        action: 'rules.activate',
        target: `v${v}`,
        details: {
          version: v,
          previousActive: previous.version,
          rollback: v < previous.version,
          changes: changes(previous.input, loaded.input),
        },
      });
      return this.current();
    });
  }

  // ------------------------------------------------------------ dry-run

  /**
   * POST /v1/routes:test: routes sample decisions, or the recorded decisions of a time range (read
   * through `loadRange`), with a candidate set (`ruleSet`, or a stored `version`) beside the active
   * set, and lists the differences per decision.
   */
  async test(
    body: unknown,
    loadRange: (r: RecordedRange) => Promise<RecordedDecision[]>,
  ): Promise<Record<string, unknown>> {
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
      if (
        !Array.isArray(body.decisions) ||
        body.decisions.length === 0 ||
        body.decisions.length > MAX_SAMPLES
      )
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
    let candidate: Loaded | undefined;
    if (hasSet && !hasVersion) {
      try {
        const parsed = parseCreate(body.ruleSet, this.opts.topicTemplate, '/ruleSet');
        candidate = load(-1, parsed.input, this.opts, '/ruleSet');
      } catch (e) {
        if (!(e instanceof CdsError) || !Array.isArray(e.details?.['errors'])) throw e;
        errors.push(...(e.details['errors'] as FieldError[]));
      }
    }
    if (errors.length > 0) throw validationError('invalid dry-run request', errors);
    if (candidate === undefined) candidate = await this.#load(body.version as number);
    const active = this.#active;
    const items: { decision: Decision; recorded?: RecordedDecision }[] =
      range === undefined
        ? samples.map((decision) => ({ decision }))
        : (await loadRange(range)).map((r) => ({ decision: r.decision, recorded: r }));
    const now = Date.now();
    let changed = 0;
    const results = items.map(({ decision, recorded }) => {
      const a = outcomeView(active, decision, now);
      const c = outcomeView(candidate, decision, now);
      const differences = diff(a, c);
      if (differences.length > 0) changed++;
      return {
        decisionId: decision.decisionId,
        revision: decision.revision,
        ...(recorded === undefined
          ? {}
          : {
              position: recorded.position,
              receivedAt: recorded.receivedAt,
              recorded: {
                ruleSet: recorded.ruleSet ?? null,
                topics: recorded.topics,
                matchedRules: recorded.rules ?? [],
              },
            }),
        active: a,
        candidate: c,
        differences,
      };
    });
    return {
      active: { version: active.version },
      candidate: {
        version: candidate.version < 0 ? null : candidate.version,
        rules: candidate.input.rules.length,
      },
      ...(range === undefined
        ? { source: 'samples' }
        : {
            source: 'recorded',
            from: new Date(range.from).toISOString(),
            to: new Date(range.to).toISOString(),
            limit: range.limit,
          }),
      summary: { decisions: results.length, changed, unchanged: results.length - changed },
      results,
    };
  }

  // ------------------------------------------------------------ explain

  /**
   * Explains the routing of a recorded decision: the recorded outcome (exact: the version and the
   * matched rules were recorded at ingest) with, per matched rule, its condition, rendered topics and
   * actions; and a re-evaluation under that immutable version that says whether it agrees.
   */
  async explain(r: RecordedDecision): Promise<Record<string, unknown>> {
    const version = r.ruleSet ?? 0;
    let loaded: Loaded | undefined;
    try {
      loaded = await this.#load(version);
    } catch {
      loaded = undefined; // the version is gone (cannot happen with this store) or no longer compiles
    }
    const matched = r.rules ?? [];
    const rules = matched.map((id) => {
      const e = loaded?.rules.get(id);
      if (e === undefined) return { id };
      const topics = (e.rule.topics ?? []).map((t) => {
        const s = compileTemplate(t).tryRender(r.decision);
        return typeof s === 'string' ? s : { template: t, error: s.message };
      });
      const a = e.rule.actions ?? {};
      const ended = a.drop
        ? 'drop'
        : a.quarantine !== undefined
          ? 'quarantine'
          : e.rule.stop
            ? 'stop'
            : undefined;
      return {
        id,
        index: e.index,
        condition: e.rule.condition,
        topics,
        ...(e.rule.actions === undefined ? {} : { actions: e.rule.actions }),
        stop: e.rule.stop === true,
        ...(ended === undefined ? {} : { endedEvaluation: ended }),
      };
    });
    const re = loaded === undefined ? undefined : outcomeView(loaded, r.decision, Date.parse(r.receivedAt));
    const consistent =
      re !== undefined &&
      !('refused' in re) &&
      same(re.topics, r.topics) &&
      same(re.matchedRules, matched) &&
      re.key === r.key &&
      re.priority === r.priority;
    return {
      ruleSet: {
        version,
        recordedAtIngest: r.ruleSet !== undefined,
        activeNow: version === this.#active.version,
      },
      matchedRules: rules,
      topics: r.topics,
      key: r.key,
      priority: r.priority,
      ...(r.topics.length === 0 ? { dropped: true } : {}),
      ...(r.quarantined === undefined ? {} : { quarantined: r.quarantined }),
      ...(r.holdUntil === undefined ? {} : { holdUntil: r.holdUntil }),
      ...(re === undefined ? {} : { reevaluation: { consistent, outcome: re } }),
    };
  }

  // ------------------------------------------------------------ internals

  #builtIn(): RuleSetInput {
    return { rules: [], defaultRoute: this.opts.topicTemplate };
  }

  #viewOf(version: number, input: RuleSetInput, rec: RuleSetRecord | undefined): RuleSetView {
    return {
      version,
      ruleSet: input,
      ...(version === 0 ? { builtIn: true as const } : {}),
      ...(rec === undefined
        ? {}
        : {
            createdAt: rec.createdAt,
            createdBy: rec.createdBy,
            ...(rec.comment === undefined ? {} : { comment: rec.comment }),
          }),
      active: version === this.#active.version,
    };
  }

  #remember(l: Loaded): void {
    this.#cache.set(l.version, l);
    if (this.#cache.size > CACHED_VERSIONS) this.#cache.delete(this.#cache.keys().next().value as number);
  }

  /** A compiled version (0: the built-in set); NOT_FOUND when not stored. */
  async #load(v: number): Promise<Loaded> {
    if (v === this.#active.version) return this.#active;
    const hit = this.#cache.get(v);
    if (hit !== undefined) return hit;
    let input = this.#builtIn();
    if (v !== 0) {
      const rec = await this.store.get(v);
      if (rec === undefined) throw new CdsError('NOT_FOUND', `no rule set version ${v}`);
      input = rec.ruleSet as unknown as RuleSetInput;
    }
    const l = load(v, input, this.opts);
    this.#remember(l);
    return l;
  }

  /** Runs changes one at a time, so that versions and the active pointer move in order. */
  #run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(fn, fn);
    this.#serial = run.catch(() => undefined);
    return run;
  }
}

/** Parses a POST /v1/routes body (or a dry-run's `ruleSet`); every error at once, with its path. */
function parseCreate(
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
function load(version: number, input: RuleSetInput, opts: RuleSetServiceOptions, at = ''): Loaded {
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

function outcomeView(l: Loaded, d: Decision, now: number): OutcomeView {
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

const same = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

function diff(a: OutcomeView, c: OutcomeView): OutcomeDifference[] {
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
function changes(before: RuleSetInput, after: RuleSetInput): Record<string, unknown> {
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
