/**
 * Versioned routing rule sets (DESIGN 4; ADR 0013): the compiled active set that ingest routes with,
 * new versions (validated whole before anything is stored), atomic activation and rollback, audit,
 * dry-runs of a candidate beside the active set, and explanations of past routing outcomes.
 */
import type { Decision } from '../domain/decision.ts';
import { CdsError, validationError, type FieldError } from '../errors/index.ts';
import type { AuditTrail } from '../security/audit.ts';
import type { ActivePointer, RuleSetRecord, RuleStore } from '../state/rules-port.ts';
import {
  changes,
  diff,
  outcomeView,
  parseTestRequest,
  same,
  type RecordedRange,
} from './rule-set-compare.ts';
import {
  isObject,
  loadRuleSet,
  parseRuleSetBody,
  type LoadedRuleSet,
  type RuleSetServiceOptions,
  type VersionedRoute,
} from './rule-set-load.ts';
import type { RuleSetInput } from './rules.ts';
import { compileTemplate } from './template.ts';

export type { VersionedOutcome, VersionedRoute, RuleSetServiceOptions } from './rule-set-load.ts';
export type { OutcomeView, OutcomeDifference, RecordedRange } from './rule-set-compare.ts';

const CACHED_VERSIONS = 16;

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

/** Holds the active compiled rule set and manages versions. */
export class RuleSetService {
  #active: LoadedRuleSet;
  #pointer: ActivePointer | undefined;
  readonly #cache = new Map<number, LoadedRuleSet>();
  #serial: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly store: RuleStore,
    private readonly audit: AuditTrail,
    private readonly opts: RuleSetServiceOptions,
    active: LoadedRuleSet,
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
    const svc = new RuleSetService(store, audit, opts, loadRuleSet(version, input, opts), pointer);
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
    const parsed = parseRuleSetBody(body, this.opts.topicTemplate);
    return this.#run(async () => {
      if (parsed.ifActive !== undefined && parsed.ifActive !== this.#active.version)
        throw new CdsError(
          'VERSION_CONFLICT',
          `the active rule set is version ${this.#active.version}, not ${parsed.ifActive}`,
        );
      const loaded = loadRuleSet((await this.store.latest()) + 1, parsed.input, this.opts);
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

  /**
   * Re-reads the active pointer from the store and routes with that version from the next publish
   * batch on (cluster mode: another instance activated it). The version is compiled whole before the
   * reference is swapped in one assignment, so no batch sees a half-applied set; runs in turn with
   * create and activate. Resolves the active version; rejects (leaving the current set) when the
   * store cannot be read or the version does not compile.
   */
  reload(): Promise<number> {
    return this.#run(async () => {
      const pointer = await this.store.active();
      const loaded = await this.#load(pointer?.version ?? 0);
      this.#active = loaded;
      this.#pointer = pointer;
      return loaded.version;
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
    const req = parseTestRequest(body, this.opts);
    const candidate = req.candidate ?? (await this.#load(req.version as number));
    const range = req.range;
    const samples = req.samples;
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
    let loaded: LoadedRuleSet | undefined;
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

  #remember(l: LoadedRuleSet): void {
    this.#cache.set(l.version, l);
    if (this.#cache.size > CACHED_VERSIONS) this.#cache.delete(this.#cache.keys().next().value as number);
  }

  /** A compiled version (0: the built-in set); NOT_FOUND when not stored. */
  async #load(v: number): Promise<LoadedRuleSet> {
    if (v === this.#active.version) return this.#active;
    const hit = this.#cache.get(v);
    if (hit !== undefined) return hit;
    let input = this.#builtIn();
    if (v !== 0) {
      const rec = await this.store.get(v);
      if (rec === undefined) throw new CdsError('NOT_FOUND', `no rule set version ${v}`);
      input = rec.ruleSet as unknown as RuleSetInput;
    }
    const l = loadRuleSet(v, input, this.opts);
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
