/**
 * Retention policies (DESIGN 5; ADR 0017): validation of the API input with precise field errors, and
 * the compiled set that says which policy governs a topic. The most specific matching pattern governs
 * a topic (token by token from the left: a name beats `*`, `*` beats `>`; a longer pattern beats its
 * prefix); a topic no pattern matches is kept for ever (the default policy).
 */
import { patternErrors, topicMatches } from '../domain/topics.ts';
import { validationError, type FieldError } from '../errors/index.ts';
import type { RetentionLimits } from '../state/retention-port.ts';

/** The most milliseconds, bytes or records a limit may name (about 285,000 years of ms). */
const MAX_LIMIT = Number.MAX_SAFE_INTEGER;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const FIELDS = new Set(['pattern', 'maxAgeMs', 'maxBytes', 'maxCount', 'onUnacknowledged', 'version']);

/** A validated PUT body: the limits, and the version the caller expects to replace (if given). */
export interface PolicyInput {
  readonly limits: RetentionLimits;
  readonly version?: number;
}

/** Field errors of a policy name (empty when valid). */
export function nameErrors(name: string): FieldError[] {
  return NAME.test(name)
    ? []
    : [
        {
          path: 'name',
          code: 'pattern',
          message: '1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit',
        },
      ];
}

/** Validates a PUT /v1/retention-policies/{name} body; throws VALIDATION_FAILED listing every bad field. */
export function parsePolicy(body: unknown): PolicyInput {
  const errors: FieldError[] = [];
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw validationError('the body must be a JSON object', [
      { path: '', code: 'type', message: 'a JSON object with pattern and limits' },
    ]);
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b))
    if (!FIELDS.has(k))
      errors.push({
        path: `/${k}`,
        code: 'unknown_field',
        message: `unknown field (${[...FIELDS].join(', ')} are accepted)`,
      });
  const pattern = b['pattern'];
  if (typeof pattern !== 'string')
    errors.push({
      path: '/pattern',
      code: 'required',
      message: 'a topic pattern (`*` one token, `>` the rest)',
    });
  else errors.push(...patternErrors(pattern, '/pattern'));
  const limit = (k: 'maxAgeMs' | 'maxBytes' | 'maxCount'): number | undefined => {
    const v = b[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > MAX_LIMIT) {
      errors.push({ path: `/${k}`, code: 'range', message: 'a non-negative integer (absent: no limit)' });
      return undefined;
    }
    return v;
  };
  const maxAgeMs = limit('maxAgeMs');
  const maxBytes = limit('maxBytes');
  const maxCount = limit('maxCount');
  const on = b['onUnacknowledged'] ?? 'wait';
  if (on !== 'wait' && on !== 'drop')
    errors.push({ path: '/onUnacknowledged', code: 'enum', message: "'wait' (default) or 'drop'" });
  const version = b['version'];
  if (version !== undefined && (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0))
    errors.push({
      path: '/version',
      code: 'range',
      message: 'the version expected to be replaced (0: the policy must not exist yet)',
    });
  if (errors.length > 0) throw validationError('the retention policy is not valid', errors);
  return {
    limits: {
      pattern: pattern as string,
      ...(maxAgeMs === undefined ? {} : { maxAgeMs }),
      ...(maxBytes === undefined ? {} : { maxBytes }),
      ...(maxCount === undefined ? {} : { maxCount }),
      onUnacknowledged: on as 'wait' | 'drop',
    },
    ...(version === undefined ? {} : { version: version as number }),
  };
}

/** Token rank for specificity: a name beats `*`, which beats `>`. */
const rank = (t: string | undefined): number => (t === undefined ? -1 : t === '>' ? 0 : t === '*' ? 1 : 2);

/** Negative when pattern `a` is more specific than `b` (sorts the most specific first); ties by text. */
export function compareSpecificity(a: string, b: string): number {
  const ta = a.split('.');
  const tb = b.split('.');
  for (let i = 0; i < Math.max(ta.length, tb.length); i++) {
    const d = rank(tb[i]) - rank(ta[i]);
    if (d !== 0) return d;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One policy as the retention computation sees it. */
export interface CompiledPolicy extends RetentionLimits {
  readonly name: string;
}

/** Index of the default policy (keep everything) in per-policy tallies. */
export const DEFAULT_POLICY = -1;
const TOPIC_CACHE = 100_000;

/** The policies in force, most specific first, with a cache of topic -> governing policy. */
export class PolicySet {
  readonly policies: readonly CompiledPolicy[];
  readonly #cache = new Map<string, number>();
  /** The policy of records without topics (dropped by a rule): the catch-all `>`, if there is one. */
  readonly #catchAll: number;

  /** `generation` changes whenever the set does (tallies made under another one are rebuilt). */
  constructor(
    policies: readonly CompiledPolicy[],
    readonly generation: number,
  ) {
    this.policies = [...policies].sort((a, b) => compareSpecificity(a.pattern, b.pattern));
    this.#catchAll = this.policies.findIndex((p) => p.pattern === '>');
  }

  /** Index of the policy governing a topic, or DEFAULT_POLICY. */
  governing(topic: string): number {
    let i = this.#cache.get(topic);
    if (i !== undefined) return i;
    i = this.policies.findIndex((p) => topicMatches(p.pattern, topic));
    if (this.#cache.size >= TOPIC_CACHE) this.#cache.clear();
    this.#cache.set(topic, i);
    return i;
  }

  /** The distinct policies governing a record's topics (a decision is kept while any of them keeps it). */
  of(topics: readonly string[]): number[] {
    if (topics.length === 0) return [this.#catchAll];
    if (topics.length === 1) return [this.governing(topics[0] as string)];
    const out: number[] = [];
    for (const t of topics) {
      const g = this.governing(t);
      if (!out.includes(g)) out.push(g);
    }
    return out;
  }
}
