/**
 * The committed workload profile (bench/workloads/fanout-profile.json): the distributions decisions
 * are drawn from and the subscribers' filters. The generator and the harness both build the same
 * decision templates from it (same seed, same order), so the harness knows, for every decision
 * number n, which subscribers must receive it, without asking the service.
 *
 * Decision n of a run is template n mod T with the id `<prefix>-<n>`. A subscriber's filter is
 * kept twice, as data the harness evaluates itself ({@link SubscriberPlan.match}) and as the CEL
 * expression given to the service; both come from the same set of values.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Decision } from '../../src/domain/decision.ts';
import { MAX_EXPRESSION_LENGTH } from '../../src/routing/index.ts';
import { mulberry32 } from '../../test/helpers/decisions.ts';

/** The profile file every delivery workload uses unless `--profile` names another. */
export const DEFAULT_PROFILE = fileURLToPath(new URL('../workloads/fanout-profile.json', import.meta.url));

type Weighted<T> = readonly (readonly [T, number])[];

/** A filter of the profile: one decision field (a dotted path) and the values it takes. */
export interface FieldFilter {
  readonly name: string;
  readonly field: string;
  readonly in: readonly (string | number)[];
}

/** The profile file's shape. */
export interface Profile {
  readonly description: string;
  readonly seed: number;
  /** Distinct decision bodies; decision n uses template n mod templates. */
  readonly templates: number;
  readonly portfolios: { readonly count: number; readonly prefix: string; readonly zipfExponent: number };
  readonly instruments: readonly {
    readonly symbol: string;
    readonly assetClass: Decision['instrument']['assetClass'];
    readonly venue: string;
    readonly currency: string;
    readonly price: number;
    readonly weight: number;
  }[];
  readonly priorities: Weighted<number>;
  readonly types: Weighted<Decision['type']>;
  readonly verdicts: Weighted<Decision['policy']['verdict']>;
  readonly subscribers: {
    /** Share of the subscribers that take a slice of the portfolios (rounded, at least 1). */
    readonly portfolioShare: number;
    /** Share of the subscribers on gRPC Sessions (the rest on WebSocket), interleaved. */
    readonly grpcShare: number;
    /** The other subscribers' filters, used in order and cyclically. */
    readonly others: readonly FieldFilter[];
  };
  /** Extra fields of every subscription created (maxInFlight, windowSize, ...). */
  readonly subscription: Readonly<Record<string, unknown>>;
  /** Credits each subscriber grants at subscribe (acks give them back). */
  readonly credits: number;
}

/** Reads and checks a profile file. */
export function loadProfile(file: string = DEFAULT_PROFILE): Profile {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const bad = (why: string) => new Error(`profile ${file}: ${why}`);
  if (!Number.isInteger(p.templates) || p.templates < 1) throw bad('templates must be a positive integer');
  if (!Number.isInteger(p.portfolios?.count) || p.portfolios.count < 1) throw bad('portfolios.count');
  if (!Array.isArray(p.instruments) || p.instruments.length === 0) throw bad('instruments');
  if (!Array.isArray(p.subscribers?.others)) throw bad('subscribers.others');
  for (const f of p.subscribers.others)
    if (typeof f.field !== 'string' || !Array.isArray(f.in) || f.in.length === 0)
      throw bad(`filter ${JSON.stringify(f)} needs a field and a non-empty 'in' list`);
  return p;
}

/** One term of a filter as data: the decision field (a dotted path) takes one of `values`. */
export interface FieldMatch {
  readonly field: string;
  readonly values: ReadonlySet<string | number>;
}

/** One subscriber of a run. */
export interface SubscriberPlan {
  /** 0-based index in the run. */
  readonly index: number;
  /** The subscription's name. */
  readonly name: string;
  readonly transport: 'grpc' | 'ws';
  /** What the filter is, for people: `portfolios 3/180`, `fx`, `all`. */
  readonly label: string;
  /** The filter as data: every term must hold (a field and the values it may take); [] takes everything. */
  readonly match: readonly FieldMatch[];
  /** The same filter in CEL for the service; undefined when it takes everything. */
  readonly cel: string | undefined;
}

const celList = (field: string, values: readonly (string | number)[]) =>
  `decision.${field} in [${values.map((v) => JSON.stringify(v)).join(',')}]`;

/**
 * Slice j of `count` of the portfolios: portfolios i with i mod count = j, as an indexed `in` list.
 * When that list is longer than the service accepts (count small), the slice is by last digit
 * instead: portfolios whose last digit d has d mod count = j (an `endsWith` disjunction; count <= 10).
 * `reserve` characters of the expression are kept for what the caller adds to it.
 */
function portfolioSlice(
  p: Profile,
  j: number,
  count: number,
  reserve = 0,
): { match: FieldMatch[]; cel: string | undefined } {
  const { prefix } = p.portfolios;
  const total = p.portfolios.count;
  if (count === 1) return { match: [], cel: undefined };
  const ids: string[] = [];
  for (let i = j; i < total; i += count) ids.push(`${prefix}${i}`);
  const cel = celList('portfolioId', ids);
  if (cel.length + reserve <= MAX_EXPRESSION_LENGTH)
    return { match: [{ field: 'portfolioId', values: new Set(ids) }], cel };
  if (count > 10) throw new Error(`profile: ${count} portfolio slices of ${total} do not fit a filter`);
  const digits = [...Array(10).keys()].filter((d) => d % count === j);
  const all = Array.from({ length: total }, (_, i) => `${prefix}${i}`);
  return {
    match: [{ field: 'portfolioId', values: new Set(all.filter((_, i) => digits.includes(i % 10))) }],
    cel: `(${digits.map((d) => `decision.portfolioId.endsWith('${d}')`).join(' || ')})`,
  };
}

/** Transports of n subscribers, interleaved: subscriber i is on gRPC while that keeps round(share * (i + 1)). */
function transports(n: number, grpcShare: number): ('grpc' | 'ws')[] {
  const out: ('grpc' | 'ws')[] = [];
  let grpc = 0;
  for (let i = 0; i < n; i++) {
    const onGrpc = Math.round(grpcShare * (i + 1)) > grpc;
    if (onGrpc) grpc++;
    out.push(onGrpc ? 'grpc' : 'ws');
  }
  return out;
}

/**
 * The subscribers of a run of `n` subscribers, named `<namePrefix>-<index>`: the first
 * round(n * portfolioShare) take a slice of the portfolios each; the others take the profile's
 * other filters in order. When there are more others than filters, the subscribers sharing a
 * filter split it between them by portfolio slices, so that a decision has about as many
 * deliveries with 2,000 subscribers as with 200.
 */
export function planSubscribers(
  p: Profile,
  n: number,
  namePrefix: string,
  grpcShare = p.subscribers.grpcShare,
): SubscriberPlan[] {
  const portfolioSubs = Math.max(1, Math.min(n, Math.round(n * p.subscribers.portfolioShare)));
  const others = p.subscribers.others;
  const otherSubs = n - portfolioSubs;
  const out: SubscriberPlan[] = [];
  const transport = transports(n, grpcShare);
  for (let i = 0; i < n; i++) {
    const name = `${namePrefix}-${i}`;
    if (i < portfolioSubs) {
      const s = portfolioSlice(p, i, portfolioSubs);
      out.push({
        index: i,
        name,
        transport: transport[i]!,
        label: portfolioSubs === 1 ? 'all' : `portfolios ${i}/${portfolioSubs}`,
        ...s,
      });
      continue;
    }
    const k = i - portfolioSubs;
    const q = k % others.length;
    const f = others[q]!;
    const own = celList(f.field, f.in);
    const term: FieldMatch = { field: f.field, values: new Set(f.in) };
    // How many subscribers share filter q, and which of them this one is.
    const sharing = Math.floor(otherSubs / others.length) + (q < otherSubs % others.length ? 1 : 0);
    const r = Math.floor(k / others.length);
    const s = portfolioSlice(p, r, sharing, own.length + 4);
    out.push({
      index: i,
      name,
      transport: transport[i]!,
      label: sharing === 1 ? f.name : `${f.name} ${r}/${sharing}`,
      match: [term, ...s.match],
      cel: s.cel === undefined ? own : `${own} && ${s.cel}`,
    });
  }
  return out;
}

/** Subscribers that take every decision (replay). */
export function planAllSubscribers(n: number, namePrefix: string, grpcShare: number): SubscriberPlan[] {
  return transports(n, grpcShare).map((transport, i) => ({
    index: i,
    name: `${namePrefix}-${i}`,
    transport,
    label: 'all',
    match: [],
    cel: undefined,
  }));
}

function pickWeighted<T>(rand: () => number, table: Weighted<T>): T {
  let total = 0;
  for (const [, w] of table) total += w;
  let r = rand() * total;
  for (const [v, w] of table) {
    r -= w;
    if (r < 0) return v;
  }
  return table[table.length - 1]![0];
}

/** Zipf-like cumulative weights: portfolio k has weight 1 / (k + 1)^s. */
function portfolioCdf(p: Profile): Float64Array {
  const cdf = new Float64Array(p.portfolios.count);
  let sum = 0;
  for (let k = 0; k < cdf.length; k++) cdf[k] = sum += 1 / (k + 1) ** p.portfolios.zipfExponent;
  for (let k = 0; k < cdf.length; k++) cdf[k]! /= sum;
  return cdf;
}

function lowerBound(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid]! < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const STRATEGIES = ['mean-reversion-3', 'momentum-1', 'stat-arb-7', 'index-rebal', 'vol-carry-2'] as const;
const SIDES = ['buy', 'sell', 'sell_short', 'buy_to_cover'] as const;
const DESKS = ['eq-us', 'eq-eu', 'macro', 'rates', 'crypto'] as const;

function decimal(value: number, scale: number): string {
  const s = value.toFixed(scale);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/**
 * The profile's decision templates without their id, in order: template t is decision body t.
 * `createdAt` is the same in all (a fixed time: templates must not differ between the generator and
 * the harness); no `expiresAt`, so that a rerun on another day delivers the same way.
 */
export function buildTemplates(p: Profile): Omit<Decision, 'decisionId'>[] {
  const rand = mulberry32(p.seed);
  const cdf = portfolioCdf(p);
  const instruments: Weighted<Profile['instruments'][number]> = p.instruments.map((i) => [i, i.weight]);
  const out: Omit<Decision, 'decisionId'>[] = [];
  for (let t = 0; t < p.templates; t++) {
    const k = lowerBound(cdf, rand());
    const inst = pickWeighted(rand, instruments);
    const type = pickWeighted(rand, p.types);
    const verdict = pickWeighted(rand, p.verdicts);
    const d: Omit<Decision, 'decisionId'> = {
      revision: 1,
      coordinationId: `coord-bench-${Math.floor(t / 64)}`,
      portfolioId: `${p.portfolios.prefix}${k}`,
      strategyId: STRATEGIES[Math.floor(rand() * STRATEGIES.length)]!,
      accountId: `acc-${k % 40}`,
      type,
      instrument: {
        symbol: inst.symbol,
        assetClass: inst.assetClass,
        venue: inst.venue,
        currency: inst.currency,
      },
      policy: {
        verdict,
        ruleIds: verdict === 'approved' ? ['max-position'] : ['max-position', 'restricted-list'],
        reasons: verdict === 'rejected' ? ['restricted instrument'] : [],
        ...(verdict === 'conditional' ? { conditions: ['reduce size by 50%'] } : {}),
      },
      priority: pickWeighted(rand, p.priorities),
      createdAt: '2026-11-27T09:30:00.000Z',
      attributes: { desk: DESKS[Math.floor(rand() * DESKS.length)]!, template: t },
    };
    if (type === 'trade' || type === 'hedge' || type === 'liquidate' || type === 'rebalance') {
      d.side = SIDES[Math.floor(rand() * SIDES.length)]!;
      d.quantity = decimal(1 + Math.floor(rand() * 5000) * (inst.assetClass === 'fx' ? 1000 : 1), 0);
      const market = type === 'liquidate' || rand() < 0.2;
      d.orderType = market ? 'market' : 'limit';
      if (!market) d.limitPrice = decimal(inst.price * (0.98 + rand() * 0.04), inst.price < 10 ? 6 : 2);
      d.timeInForce = market ? 'ioc' : rand() < 0.8 ? 'day' : 'gtc';
    }
    out.push(d);
  }
  return out;
}

/** `"revision":1,...}`: the JSON of a template after its opening brace, to follow `{"decisionId":"..",`. */
export function templateTails(templates: readonly Omit<Decision, 'decisionId'>[]): string[] {
  return templates.map((t) => JSON.stringify(t).slice(1));
}

function fieldOf(d: unknown, path: string): unknown {
  let v = d;
  for (const seg of path.split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[seg];
  }
  return v;
}

/**
 * For every template, the indexes of the subscribers whose filter takes it (evaluated here, from
 * the filters as data, independently of the service's CEL).
 */
export function matchTable(
  templates: readonly Omit<Decision, 'decisionId'>[],
  subs: readonly SubscriberPlan[],
): Uint32Array[] {
  // Subscribers filed by their first term (field -> value -> subscribers); without terms they take everything.
  const byField = new Map<string, Map<string | number, SubscriberPlan[]>>();
  const everything: number[] = [];
  for (const s of subs) {
    const first = s.match[0];
    if (first === undefined) {
      everything.push(s.index);
      continue;
    }
    let m = byField.get(first.field);
    if (m === undefined) byField.set(first.field, (m = new Map()));
    for (const v of first.values) {
      const l = m.get(v);
      if (l === undefined) m.set(v, [s]);
      else l.push(s);
    }
  }
  const holds = (t: unknown, term: FieldMatch) => {
    const v = fieldOf(t, term.field);
    return (typeof v === 'string' || typeof v === 'number') && term.values.has(v);
  };
  return templates.map((t) => {
    const hit = [...everything];
    for (const [field, m] of byField) {
      const v = fieldOf(t, field);
      if (typeof v !== 'string' && typeof v !== 'number') continue;
      for (const s of m.get(v) ?? []) if (s.match.every((term) => holds(t, term))) hit.push(s.index);
    }
    return Uint32Array.from(hit.sort((a, b) => a - b));
  });
}
