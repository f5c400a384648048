/**
 * Valid decisions for tests and benchmarks: a fixed one by index, and a seeded generator with
 * realistic distributions (a few busy portfolios, equity-heavy asset classes, mostly approved
 * trades). The same seed always gives the same sequence, so a failing run can be replayed.
 */
import { writeFile } from 'node:fs/promises';
import type { Decision } from '../../src/domain/decision.ts';

/** A small fast PRNG (mulberry32): returns a function giving floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The seed of this run: CDS_TEST_SEED when set (to replay a failure), otherwise a random one.
 * It is printed to stderr with `label` so that every failing run can be reproduced.
 */
export function testSeed(label: string): number {
  const fromEnv = process.env['CDS_TEST_SEED'];
  const seed =
    fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  process.stderr.write(`[${label}] seed=${seed} (replay with CDS_TEST_SEED=${seed})\n`);
  return seed;
}

/** The identifying fields of an instrument, by asset class. */
interface InstrumentSpec {
  readonly symbol: string;
  readonly assetClass: Decision['instrument']['assetClass'];
  readonly venue: string;
  readonly currency: string;
  readonly price: number;
}

/** Instruments with a weight each: equities dominate, the long tail is thin. */
const INSTRUMENTS: readonly (readonly [InstrumentSpec, number])[] = [
  [{ symbol: 'AAPL', assetClass: 'equity', venue: 'XNAS', currency: 'USD', price: 189.25 }, 12],
  [{ symbol: 'MSFT', assetClass: 'equity', venue: 'XNAS', currency: 'USD', price: 412.5 }, 10],
  [{ symbol: 'JPM', assetClass: 'equity', venue: 'XNYS', currency: 'USD', price: 198.1 }, 6],
  [{ symbol: 'SAP', assetClass: 'equity', venue: 'XETR', currency: 'EUR', price: 176.3 }, 4],
  [{ symbol: 'SPY', assetClass: 'etf', venue: 'ARCX', currency: 'USD', price: 512.75 }, 8],
  [{ symbol: 'QQQ', assetClass: 'etf', venue: 'XNAS', currency: 'USD', price: 438.2 }, 4],
  [{ symbol: 'AAPL261218C00200000', assetClass: 'option', venue: 'XCBO', currency: 'USD', price: 7.45 }, 4],
  [{ symbol: 'ESZ6', assetClass: 'future', venue: 'XCME', currency: 'USD', price: 5321.25 }, 5],
  [{ symbol: 'EUR/USD', assetClass: 'fx', venue: 'EBSM', currency: 'USD', price: 1.0842 }, 5],
  [
    { symbol: 'US912828ZT04', assetClass: 'fixed_income', venue: 'BTEC', currency: 'USD', price: 98.515625 },
    3,
  ],
  [{ symbol: 'BTC-USD', assetClass: 'crypto', venue: 'CBSE', currency: 'USD', price: 67250.5 }, 2],
  [{ symbol: 'GCZ6', assetClass: 'commodity', venue: 'XCEC', currency: 'USD', price: 2341.7 }, 2],
  [{ symbol: 'IRS-USD-5Y', assetClass: 'swap', venue: 'XCME', currency: 'USD', price: 3.915 }, 1],
];

const TYPES: readonly (readonly [Decision['type'], number])[] = [
  ['trade', 70],
  ['rebalance', 10],
  ['hedge', 10],
  ['liquidate', 3],
  ['cancel', 4],
  ['halt', 2],
  ['resume', 1],
];
const VERDICTS: readonly (readonly [Decision['policy']['verdict'], number])[] = [
  ['approved', 80],
  ['conditional', 12],
  ['rejected', 8],
];
/** Priorities 0-9: mostly routine (3-5), rarely urgent. */
const PRIORITIES: readonly (readonly [number, number])[] = [
  [0, 2],
  [1, 4],
  [2, 8],
  [3, 15],
  [4, 20],
  [5, 25],
  [6, 12],
  [7, 8],
  [8, 4],
  [9, 2],
];
const STRATEGIES = ['mean-reversion-3', 'momentum-1', 'stat-arb-7', 'index-rebal', 'vol-carry-2'] as const;
const SIDES = ['buy', 'sell', 'sell_short', 'buy_to_cover'] as const;
const DESKS = ['eq-us', 'eq-eu', 'macro', 'rates', 'crypto'] as const;

function pickWeighted<T>(rand: () => number, table: readonly (readonly [T, number])[]): T {
  let total = 0;
  for (const [, w] of table) total += w;
  let r = rand() * total;
  for (const [v, w] of table) {
    r -= w;
    if (r < 0) return v;
  }
  return table[table.length - 1]![0];
}

function pick<T>(rand: () => number, values: readonly T[]): T {
  return values[Math.floor(rand() * values.length)]!;
}

/** A decimal string with up to `scale` fraction digits (trailing zeros removed). */
function decimal(value: number, scale: number): string {
  const s = value.toFixed(scale);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/**
 * The expiry of generated decisions: far in the future, so that they are delivered whatever day a
 * test or benchmark runs. (They used to expire at 16:00 UTC on the day they were written, 2026-11-27;
 * after that delivery skipped them as expired and every test counting deliveries waited for ever.)
 */
export const NEVER_EXPIRES = '2099-11-27T16:00:00Z';

/**
 * A fixed valid decision number `i` (decisionId `dec-000001` style), close to the example in the
 * issue; `overrides` replaces top-level fields (use `undefined` values to drop optional ones).
 */
export function makeDecision(i: number, overrides: Partial<Decision> = {}): Decision {
  const d: Decision = {
    decisionId: `dec-${String(i).padStart(6, '0')}`,
    revision: 1,
    coordinationId: 'coord-2026-11-27-001',
    portfolioId: `pf-${i % 17}`,
    strategyId: 'mean-reversion-3',
    accountId: 'acc-9',
    type: 'trade',
    instrument: { symbol: 'AAPL', assetClass: 'equity', venue: 'XNAS', currency: 'USD' },
    side: 'buy',
    quantity: '1500',
    limitPrice: '189.25',
    orderType: 'limit',
    timeInForce: 'day',
    policy: { verdict: 'approved', ruleIds: ['max-position'], reasons: [] },
    priority: 5,
    expiresAt: NEVER_EXPIRES,
    createdAt: '2026-11-27T09:30:00.123Z',
    attributes: { desk: 'eq-us' },
  };
  const out = { ...d, ...overrides };
  for (const k of Object.keys(out) as (keyof Decision)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/** Options of {@link createDecisionGenerator}. */
export interface GeneratorOptions {
  /** PRNG seed; the same seed gives the same decisions. */
  readonly seed: number;
  /** Portfolios are pf-0 .. pf-(portfolios-1); a few are much busier than the rest. Default 50. */
  readonly portfolios?: number;
  /** Prefix of decision ids, so that runs on one data directory do not collide. Default `gen`. */
  readonly idPrefix?: string;
}

/** A seeded source of valid decisions with realistic distributions. */
export interface DecisionGenerator {
  /** The seed it was created with. */
  readonly seed: number;
  /** The next decision (ids `<prefix>-<n>`, n counting from 0, revision 1). */
  next(): Decision;
  /** The next `n` decisions. */
  take(n: number): Decision[];
  /** The PRNG itself, for callers that want the same reproducible stream of choices. */
  readonly rand: () => number;
}

/** From the generator's creation times (2026) to their expiries (2099). */
const FAR_FUTURE_MS = Date.parse(NEVER_EXPIRES) - Date.parse('2026-11-27T16:00:00Z');

/** Creates a seeded generator of valid decisions. */
export function createDecisionGenerator(opts: GeneratorOptions): DecisionGenerator {
  const rand = mulberry32(opts.seed);
  const portfolios = Math.max(1, opts.portfolios ?? 50);
  const prefix = opts.idPrefix ?? 'gen';
  const base = Date.parse('2026-11-27T09:30:00.000Z');
  let n = 0;

  const portfolio = (): string => {
    // Skewed: squaring a uniform draw puts about a third of the traffic on the first tenth.
    const r = rand();
    return `pf-${Math.floor(r * r * portfolios)}`;
  };

  const next = (): Decision => {
    const i = n++;
    const inst = pickWeighted(rand, INSTRUMENTS);
    const type = pickWeighted(rand, TYPES);
    const verdict = pickWeighted(rand, VERDICTS);
    const createdMs = base + i * 7 + Math.floor(rand() * 5);
    const d: Decision = {
      decisionId: `${prefix}-${i}`,
      revision: 1,
      coordinationId: `coord-2026-11-27-${String(1 + Math.floor(i / 1000)).padStart(4, '0')}`,
      portfolioId: portfolio(),
      strategyId: pick(rand, STRATEGIES),
      accountId: `acc-${Math.floor(rand() * 20)}`,
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
      priority: type === 'halt' || type === 'cancel' ? 9 : pickWeighted(rand, PRIORITIES),
      createdAt: new Date(createdMs).toISOString(),
      attributes: { desk: pick(rand, DESKS), seq: i },
    };
    if (type === 'trade' || type === 'hedge' || type === 'liquidate' || type === 'rebalance') {
      d.side = pick(rand, SIDES);
      d.quantity = decimal(1 + Math.floor(rand() * 5000) * (inst.assetClass === 'fx' ? 1000 : 1), 0);
      const market = type === 'liquidate' || rand() < 0.2;
      d.orderType = market ? 'market' : 'limit';
      if (!market) d.limitPrice = decimal(inst.price * (0.98 + rand() * 0.04), inst.price < 10 ? 6 : 2);
      d.timeInForce = market ? 'ioc' : rand() < 0.8 ? 'day' : 'gtc';
    }
    // The close of the trading day, in a year no run will reach (see NEVER_EXPIRES).
    if (rand() < 0.7) d.expiresAt = new Date(createdMs + FAR_FUTURE_MS + 6.5 * 3600_000).toISOString();
    return d;
  };

  return {
    seed: opts.seed,
    rand,
    next,
    take: (count: number) => Array.from({ length: count }, next),
  };
}

/** Writes decisions as JSON lines (one decision per line), the input format of `cds publish`. */
export async function writeDecisionsJsonl(file: string, decisions: Iterable<Decision>): Promise<void> {
  let text = '';
  for (const d of decisions) text += JSON.stringify(d) + '\n';
  await writeFile(file, text);
}
