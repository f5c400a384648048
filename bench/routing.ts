// Routing-stage rate on one core (DESIGN 9): rules + subscription matching per decision, with
// indexable conditions and without. Run: npx tsx bench/routing.ts [seconds-per-case]
import { compileRuleSet, SubscriptionMatcher, type RuleInput } from '../src/routing/index.ts';
import { sampleDecision } from '../src/routing/test-fixtures.ts';
import type { Decision } from '../src/domain/decision.ts';

const SECONDS = Number(process.argv[2] ?? 1);
const N = 1000;
const CLASSES = ['equity', 'etf', 'option', 'future', 'fx'] as const;

function decisions(count: number): Decision[] {
  return Array.from({ length: count }, (_, i) =>
    sampleDecision({
      decisionId: `d-${i}`,
      portfolioId: `pf-${(i * 7919) % N}`,
      accountId: `acc-${(i * 104729) % N}`,
      priority: i % 10,
      quantity: String(10 + ((i * 31) % 3000)),
      instrument: {
        symbol: 'X',
        assetClass: CLASSES[i % CLASSES.length] as Decision['instrument']['assetClass'],
        currency: 'USD',
      },
    }),
  );
}

function indexedRules(): RuleInput[] {
  return Array.from({ length: N }, (_, i) =>
    i % 2 === 0
      ? {
          id: `r${i}`,
          condition: `decision.portfolioId == 'pf-${i}' && decision.priority >= 3`,
          topics: [`desk.r${i}.{portfolioId}`],
        }
      : {
          id: `r${i}`,
          condition: `decision.accountId in ['acc-${i}', 'acc-${(i + 1) % N}'] && double(decision.quantity) > 100.0`,
          topics: [`accounts.{accountId}`],
        },
  );
}

function unindexedRules(): RuleInput[] {
  // Each needs CEL on every decision: a comparison the index cannot use.
  return Array.from({ length: N }, (_, i) => ({
    id: `u${i}`,
    condition: `decision.priority > 9 || double(decision.quantity) > ${5000 + i}.0`,
    topics: [`big.r${i}`],
  }));
}

function matcher(count: number): SubscriptionMatcher {
  const m = new SubscriptionMatcher();
  for (let i = 0; i < count; i++) {
    m.add({
      id: `s${i}`,
      patterns: [i % 2 === 0 ? 'decisions.>' : 'decisions.*.*'],
      filter: `decision.portfolioId in ['pf-${i}', 'pf-${(i + 1) % N}', 'pf-${(i + 2) % N}'] && decision.priority >= 2`,
    });
  }
  return m;
}

/** Decisions per second of `fn` over `SECONDS`, after a warm-up. */
function rate(pool: readonly Decision[], fn: (d: Decision) => number): number {
  let sink = 0;
  // Warm-up for the JIT, bounded in time because the unindexed case is slow.
  const warm = performance.now() + 300;
  for (let i = 0; i < 20_000 && performance.now() < warm; i++) sink += fn(pool[i % pool.length] as Decision);
  const end = performance.now() + SECONDS * 1000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) sink += fn(pool[(n + i) % pool.length] as Decision);
    n += 100;
  }
  const dt = (performance.now() - t0) / 1000;
  if (sink === -1) console.log(sink);
  return n / dt;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');

const pool = decisions(10_000);
const now = Date.now();
const indexed = compileRuleSet({ rules: indexedRules() });
const unindexed = compileRuleSet({ rules: unindexedRules() });
const subs1000 = matcher(1000);
const subs10 = matcher(10);

const cases: Array<[string, (d: Decision) => number, number]> = [
  [
    'route (1,000 indexed rules) + match (1,000 indexed subscriptions)',
    (d) => {
      const o = indexed.route(d, now);
      return o.topics.length + subs1000.match(d, o.topics).length;
    },
    SECONDS,
  ],
  ['route only, 1,000 indexed rules', (d) => indexed.route(d, now).topics.length, SECONDS],
  [
    'match only, 1,000 indexed subscriptions',
    (d) => subs1000.match(d, ['decisions.equity.pf-1']).length,
    SECONDS,
  ],
  ['match only, 10 indexed subscriptions', (d) => subs10.match(d, ['decisions.equity.pf-1']).length, SECONDS],
  [
    'route (1,000 rules, none indexable) + match (1,000 indexed subscriptions)',
    (d) => {
      const o = unindexed.route(d, now);
      return o.topics.length + subs1000.match(d, o.topics).length;
    },
    SECONDS,
  ],
];

const sample = indexed.route(pool[0] as Decision, now);
console.log(
  `node ${process.version}; ${SECONDS}s per run; 3 runs per case; sample outcome topics ${JSON.stringify(sample.topics)}`,
);
const only = process.env.BENCH_CASE;
for (const [name, fn] of cases) {
  if (only !== undefined && !name.startsWith(only)) continue;
  const runs = [rate(pool, fn), rate(pool, fn), rate(pool, fn)];
  console.log(`${name}: median ${fmt(median(runs))}/s (runs ${runs.map(fmt).join(', ')})`);
}
