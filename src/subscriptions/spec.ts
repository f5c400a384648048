/**
 * A subscription's definition (DESIGN 5; ADR 0009): the input schema with its defaults, validation
 * with precise field errors (CEL and JSONata errors with their position), and live patches.
 */
import jsonata from 'jsonata';
import { patternErrors } from '../domain/topics.ts';
import { validationError, type FieldError } from '../errors/index.ts';
import { lineColumn, tryAnalyseFilter } from '../routing/index.ts';

/** Where a new subscription starts reading. */
export type StartSpec =
  | { readonly kind: 'latest' }
  | { readonly kind: 'earliest' }
  | {
      readonly kind: 'positions';
      readonly positions: readonly string[];
      /** The log epoch the positions belong to, when the client named it (a resume token does): another epoch is refused. */
      readonly epoch?: string;
    }
  | { readonly kind: 'time'; readonly time: string };

/** What happens when the consumers are slower than the flow. */
export type SlowConsumerSpec =
  | { readonly policy: 'block' }
  | { readonly policy: 'conflate' }
  | {
      readonly policy: 'disconnect';
      readonly lagLimit: number;
      /** A consumer connected for less than this (ms, default 5,000) is not closed: it may catch up. */
      readonly graceMs?: number;
    };

/** Redelivery backoff: min(initialMs * multiplier^(n-1), maxMs) before the n-th redelivery. */
export interface BackoffSpec {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
}

/** Lifecycle state of a subscription. */
export type SubscriptionState = 'active' | 'paused' | 'draining';

/** A validated subscription definition with every default filled in. */
export interface SubscriptionSpec {
  readonly name: string;
  readonly topics: readonly string[];
  readonly filter?: string;
  readonly transform?: string;
  readonly start: StartSpec;
  readonly ordering: 'key' | 'partition' | 'none';
  readonly ackPolicy: 'explicit' | 'auto';
  readonly ackTimeoutMs: number;
  readonly maxDeliveries: number;
  readonly backoff: BackoffSpec;
  readonly deadLetter: boolean;
  readonly slowConsumer: SlowConsumerSpec;
  readonly maxInFlight: number;
  readonly windowSize: number;
  readonly includeExpired: boolean;
  readonly state: SubscriptionState;
}

/** Defaults of every optional field. */
export const SPEC_DEFAULTS = Object.freeze({
  ordering: 'key',
  ackPolicy: 'explicit',
  ackTimeoutMs: 30_000,
  maxDeliveries: 5,
  backoff: Object.freeze({ initialMs: 1000, maxMs: 60_000, multiplier: 2 }),
  deadLetter: true,
  slowConsumer: Object.freeze({ policy: 'block' }),
  maxInFlight: 1000,
  windowSize: 4096,
  includeExpired: false,
} as const);

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const POSITION = /^(0|[1-9][0-9]{0,4}):(0|[1-9][0-9]{0,15})$/;
const CREATE_FIELDS = new Set([
  'name',
  'topics',
  'filter',
  'transform',
  'start',
  'ordering',
  'ackPolicy',
  'ackTimeoutMs',
  'maxDeliveries',
  'backoff',
  'deadLetter',
  'slowConsumer',
  'maxInFlight',
  'windowSize',
  'includeExpired',
]);
/** Fields a PATCH may change (live); `version` is the optional expected version. */
const PATCH_FIELDS = new Set([
  'topics',
  'filter',
  'transform',
  'ackPolicy',
  'ackTimeoutMs',
  'maxDeliveries',
  'backoff',
  'deadLetter',
  'slowConsumer',
  'maxInFlight',
  'includeExpired',
  'version',
]);

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Compiles a JSONata transform, or the field error with the position of its syntax error. */
export function tryCompileTransform(
  source: unknown,
  path = '/transform',
): ReturnType<typeof jsonata> | FieldError {
  if (typeof source !== 'string' || source.trim() === '')
    return { path, code: 'type', message: 'a non-empty JSONata expression' };
  if (source.length > 8192) return { path, code: 'too_long', message: 'at most 8192 characters' };
  try {
    return jsonata(source);
  } catch (e) {
    const x = e as { position?: unknown; message?: unknown; code?: unknown };
    const offset = typeof x.position === 'number' ? Math.max(0, x.position - 1) : 0;
    const { line, column } = lineColumn(source, offset);
    return {
      path,
      code: 'jsonata_syntax',
      message: `${String(x.message)} (${String(x.code)}; line ${line}, column ${column})`,
      offset,
      line,
      column,
    } as FieldError;
  }
}

function int(v: unknown, path: string, min: number, max: number, errors: FieldError[]): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    errors.push({ path, code: 'type', message: 'an integer' });
    return undefined;
  }
  if (v < min || v > max) {
    errors.push({ path, code: 'range', message: `between ${min} and ${max}` });
    return undefined;
  }
  return v;
}

function oneOf<T extends string>(
  v: unknown,
  path: string,
  allowed: readonly T[],
  errors: FieldError[],
): T | undefined {
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    errors.push({ path, code: 'enum', message: `one of ${allowed.join(', ')}` });
    return undefined;
  }
  return v as T;
}

function topicsOf(v: unknown, errors: FieldError[]): string[] | undefined {
  if (!Array.isArray(v) || v.length === 0 || v.length > 32) {
    errors.push({ path: '/topics', code: 'type', message: 'an array of 1 to 32 topic patterns' });
    return undefined;
  }
  const before = errors.length;
  v.forEach((p, i) => {
    if (typeof p !== 'string') errors.push({ path: `/topics/${i}`, code: 'type', message: 'a string' });
    else errors.push(...patternErrors(p, `/topics/${i}`));
  });
  return errors.length === before ? [...new Set(v as string[])] : undefined;
}

function filterOf(v: unknown, errors: FieldError[]): string | undefined {
  if (typeof v !== 'string') {
    errors.push({ path: '/filter', code: 'type', message: 'a CEL expression over `decision`' });
    return undefined;
  }
  const r = tryAnalyseFilter(v, '/filter');
  if ('code' in r) errors.push(r);
  return v;
}

function transformOf(v: unknown, errors: FieldError[]): string | undefined {
  const r = tryCompileTransform(v);
  if ('code' in r && 'path' in r) errors.push(r as FieldError);
  return typeof v === 'string' ? v : undefined;
}

function startOf(v: unknown, errors: FieldError[]): StartSpec | undefined {
  if (v === 'latest' || v === 'earliest') return { kind: v };
  if (isObj(v)) {
    const epoch = v['epoch'];
    const keys = Object.keys(v).filter((k) => k !== 'epoch');
    if (epoch !== undefined && (typeof epoch !== 'string' || !/^[0-9a-f]{1,64}$/.test(epoch))) {
      errors.push({
        path: '/start/epoch',
        code: 'pattern',
        message: 'a log epoch (hex), as deliveries carry it',
      });
      return undefined;
    }
    if (keys.length === 1 && (keys[0] === 'position' || keys[0] === 'positions')) {
      const raw = v['position'] ?? v['positions'];
      const list = Array.isArray(raw) ? raw : [raw];
      const bad = list.findIndex((p) => typeof p !== 'string' || !POSITION.test(p));
      if (list.length === 0 || bad >= 0) {
        errors.push({
          path: `/start/${keys[0]}`,
          code: 'invalid_position',
          message: 'positions like "0:42"',
        });
        return undefined;
      }
      return { kind: 'positions', positions: list as string[], ...(epoch === undefined ? {} : { epoch }) };
    }
    if (keys.length === 1 && keys[0] === 'time') {
      const t = v['time'];
      if (typeof t !== 'string' || Number.isNaN(Date.parse(t))) {
        errors.push({ path: '/start/time', code: 'format', message: 'an ISO 8601 time' });
        return undefined;
      }
      return { kind: 'time', time: new Date(t).toISOString() };
    }
  }
  errors.push({
    path: '/start',
    code: 'type',
    message:
      '"latest", "earliest", {"position": "p:o"}, {"positions": [...]} (either with an optional "epoch") or {"time": ISO 8601}',
  });
  return undefined;
}

function backoffOf(v: unknown, errors: FieldError[]): BackoffSpec | undefined {
  if (!isObj(v)) {
    errors.push({ path: '/backoff', code: 'type', message: 'an object {initialMs, maxMs, multiplier}' });
    return undefined;
  }
  for (const k of Object.keys(v))
    if (!['initialMs', 'maxMs', 'multiplier'].includes(k))
      errors.push({ path: `/backoff/${k}`, code: 'unknown_field', message: 'not a backoff field' });
  const d = SPEC_DEFAULTS.backoff;
  const initialMs = int(v['initialMs'] ?? d.initialMs, '/backoff/initialMs', 0, 3_600_000, errors);
  const maxMs = int(v['maxMs'] ?? d.maxMs, '/backoff/maxMs', 0, 86_400_000, errors);
  const m = v['multiplier'] ?? d.multiplier;
  if (typeof m !== 'number' || m < 1 || m > 10)
    errors.push({ path: '/backoff/multiplier', code: 'range', message: 'a number between 1 and 10' });
  if (initialMs === undefined || maxMs === undefined || typeof m !== 'number') return undefined;
  if (maxMs < initialMs)
    errors.push({ path: '/backoff/maxMs', code: 'range', message: 'at least initialMs' });
  return { initialMs, maxMs, multiplier: m };
}

function slowOf(v: unknown, errors: FieldError[]): SlowConsumerSpec | undefined {
  if (!isObj(v)) {
    errors.push({ path: '/slowConsumer', code: 'type', message: 'an object {policy, lagLimit?, graceMs?}' });
    return undefined;
  }
  const policy = oneOf(v['policy'], '/slowConsumer/policy', ['block', 'conflate', 'disconnect'], errors);
  for (const k of Object.keys(v))
    if (k !== 'policy' && !((k === 'lagLimit' || k === 'graceMs') && policy === 'disconnect'))
      errors.push({
        path: `/slowConsumer/${k}`,
        code: 'unknown_field',
        message: 'not a field of this policy',
      });
  if (policy === 'disconnect') {
    const lagLimit = int(v['lagLimit'], '/slowConsumer/lagLimit', 1, 1e12, errors);
    const graceMs =
      v['graceMs'] === undefined
        ? undefined
        : int(v['graceMs'], '/slowConsumer/graceMs', 0, 3_600_000, errors);
    if (lagLimit === undefined) return undefined;
    return graceMs === undefined ? { policy, lagLimit } : { policy, lagLimit, graceMs };
  }
  return policy === undefined ? undefined : { policy };
}

function bool(v: unknown, path: string, errors: FieldError[]): boolean | undefined {
  if (typeof v !== 'boolean') {
    errors.push({ path, code: 'type', message: 'true or false' });
    return undefined;
  }
  return v;
}

/** Validates the body of POST /v1/subscriptions; throws VALIDATION_FAILED listing every bad field. */
/**
 * Where a seek goes (POST /v1/subscriptions/{name}/seek, the gRPC `resume`): the body's `to`, or the
 * body itself, as a `start` value; none is "latest". Positions may name their `epoch` (ADR 0014):
 * another epoch is refused when the seek is resolved. Field errors name `<field>/...` (`/to` over
 * REST, `/resume` for a gRPC resume), or `/...` for a bare target.
 */
export function parseSeek(body: unknown, field = '/to'): StartSpec {
  const b = isObj(body) ? body : undefined;
  const wrapped = b !== undefined && 'to' in b;
  const to = wrapped ? b['to'] : b !== undefined && Object.keys(b).length === 0 ? undefined : body;
  if (to === undefined || to === null) return { kind: 'latest' };
  const errors: FieldError[] = [];
  if (wrapped)
    for (const k of Object.keys(b))
      if (k !== 'to') errors.push({ path: `/${k}`, code: 'unknown_field', message: 'not a seek field' });
  const start = startOf(to, errors);
  if (start !== undefined && errors.length === 0) return start;
  throw validationError(
    'not a seek target; nothing was changed',
    errors.map((e) => ({ ...e, path: e.path.replace(/^\/start/, wrapped ? field : '') })),
  );
}

export function parseCreate(body: unknown): SubscriptionSpec {
  const errors: FieldError[] = [];
  if (!isObj(body))
    throw validationError('the body must be a JSON object', [
      { path: '', code: 'type', message: 'an object' },
    ]);
  for (const k of Object.keys(body))
    if (!CREATE_FIELDS.has(k))
      errors.push({ path: `/${k}`, code: 'unknown_field', message: 'not a subscription field' });
  const name = body['name'];
  if (typeof name !== 'string' || !NAME.test(name))
    errors.push({
      path: '/name',
      code: 'pattern',
      message: 'letters, digits, . _ - (1 to 128, starting with a letter or digit)',
    });
  const topics = topicsOf(body['topics'], errors);
  const filter = body['filter'] === undefined ? undefined : filterOf(body['filter'], errors);
  const transform = body['transform'] === undefined ? undefined : transformOf(body['transform'], errors);
  const start = body['start'] === undefined ? { kind: 'latest' as const } : startOf(body['start'], errors);
  const d = SPEC_DEFAULTS;
  const ordering = oneOf(body['ordering'] ?? d.ordering, '/ordering', ['key', 'partition', 'none'], errors);
  const windowSize = int(body['windowSize'] ?? d.windowSize, '/windowSize', 16, 65_536, errors);
  const common = commonOf(body, errors, undefined);
  if (
    errors.length > 0 ||
    topics === undefined ||
    start === undefined ||
    ordering === undefined ||
    windowSize === undefined
  )
    throw validationError('invalid subscription; nothing was changed', errors);
  return {
    name: name as string,
    topics,
    ...(filter === undefined ? {} : { filter }),
    ...(transform === undefined ? {} : { transform }),
    start,
    ordering,
    windowSize,
    ...(common as Omit<
      SubscriptionSpec,
      'name' | 'topics' | 'filter' | 'transform' | 'start' | 'ordering' | 'windowSize' | 'state'
    >),
    state: 'active',
  };
}

/** The policy fields shared by create and patch; absent ones take `base` (or the defaults). */
function commonOf(body: Record<string, unknown>, errors: FieldError[], base: SubscriptionSpec | undefined) {
  const d = base ?? SPEC_DEFAULTS;
  const pick = (k: string, dv: unknown) => (body[k] === undefined ? dv : body[k]);
  return {
    ackPolicy: oneOf(pick('ackPolicy', d.ackPolicy), '/ackPolicy', ['explicit', 'auto'], errors),
    ackTimeoutMs: int(pick('ackTimeoutMs', d.ackTimeoutMs), '/ackTimeoutMs', 100, 3_600_000, errors),
    maxDeliveries: int(pick('maxDeliveries', d.maxDeliveries), '/maxDeliveries', 1, 1000, errors),
    backoff: body['backoff'] === undefined ? d.backoff : backoffOf(body['backoff'], errors),
    deadLetter: bool(pick('deadLetter', d.deadLetter), '/deadLetter', errors),
    slowConsumer: body['slowConsumer'] === undefined ? d.slowConsumer : slowOf(body['slowConsumer'], errors),
    maxInFlight: int(pick('maxInFlight', d.maxInFlight), '/maxInFlight', 1, 100_000, errors),
    includeExpired: bool(pick('includeExpired', d.includeExpired), '/includeExpired', errors),
  };
}

/** Validates a PATCH body against the current definition; returns the new definition and the expected version. */
export function parsePatch(
  cur: SubscriptionSpec,
  body: unknown,
): { spec: SubscriptionSpec; version?: number; changed: string[] } {
  const errors: FieldError[] = [];
  if (!isObj(body))
    throw validationError('the body must be a JSON object', [
      { path: '', code: 'type', message: 'an object' },
    ]);
  for (const k of Object.keys(body)) {
    if (!PATCH_FIELDS.has(k))
      errors.push({
        path: `/${k}`,
        code: CREATE_FIELDS.has(k) ? 'immutable' : 'unknown_field',
        message: CREATE_FIELDS.has(k)
          ? 'cannot be changed on a live subscription (use seek for the position)'
          : 'not a subscription field',
      });
  }
  const version =
    body['version'] === undefined
      ? undefined
      : int(body['version'], '/version', 1, Number.MAX_SAFE_INTEGER, errors);
  const topics = body['topics'] === undefined ? cur.topics : topicsOf(body['topics'], errors);
  let filter = cur.filter;
  if (body['filter'] === null) filter = undefined;
  else if (body['filter'] !== undefined) filter = filterOf(body['filter'], errors);
  let transform = cur.transform;
  if (body['transform'] === null) transform = undefined;
  else if (body['transform'] !== undefined) transform = transformOf(body['transform'], errors);
  const common = commonOf(body, errors, cur);
  if (errors.length > 0 || topics === undefined)
    throw validationError('invalid change; nothing was changed', errors);
  const { filter: _f, transform: _t, ...rest } = cur;
  const spec: SubscriptionSpec = {
    ...rest,
    topics,
    ...(filter === undefined ? {} : { filter }),
    ...(transform === undefined ? {} : { transform }),
    ...(common as Pick<SubscriptionSpec, 'ackPolicy'>),
  };
  const changed = Object.keys(body).filter((k) => k !== 'version');
  return { spec, ...(version === undefined ? {} : { version }), changed };
}

/** Whether a grant pattern covers every topic a subscription pattern can match. */
export function patternCovers(grant: string, pattern: string): boolean {
  const g = grant.split('.');
  const p = pattern.split('.');
  for (let i = 0; i < g.length; i++) {
    const gt = g[i];
    if (gt === '>') return p.length > i;
    const pt = p[i];
    if (pt === undefined) return false;
    if (pt === '>') return false;
    if (gt === '*') continue;
    if (gt !== pt) return false;
  }
  return g.length === p.length;
}
