// Routing-stage rate on one core (DESIGN 9): rules + subscription matching per decision, with
// indexable conditions and without. Run: npx tsx bench/routing.ts [seconds-per-run] [baseline-git-rev]
// With a baseline revision (for example 38f331e, before the compiled conditions), that revision's
// src/ is extracted to a temporary directory and both implementations run alternately in the same
// process, so the ratio compares them under the same machine load.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as current from '../src/routing/index.ts';
import type { RuleInput } from '../src/routing/index.ts';
import { sampleDecision } from '../src/routing/test-fixtures.ts';
import type { Decision } from '../src/domain/decision.ts';

const SECONDS = Number(process.argv[2] ?? 1);
const BASELINE = process.argv[3];
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

type Routing = Pick<typeof current, 'compileRuleSet' | 'SubscriptionMatcher'>;

function matcher(impl: Routing, count: number): current.SubscriptionMatcher {
  const m = new impl.SubscriptionMatcher();
  for (let i = 0; i < count; i++) {
    m.add({
      id: `s${i}`,
      patterns: [i % 2 === 0 ? 'decisions.>' : 'decisions.*.*'],
      filter: `decision.portfolioId in ['pf-${i}', 'pf-${(i + 1) % N}', 'pf-${(i + 2) % N}'] && decision.priority >= 2`,
    });
  }
  return m;
}

/**
 * Decisions per second of `fn` over `SECONDS` after a warm-up: by wall clock, and per second of this
 * process's CPU time (user + system), which is the one-core rate even when a loaded machine takes
 * the core away part of the time (GC helper threads count too, so it errs low).
 */
function rate(pool: readonly Decision[], fn: (d: Decision) => number): { wall: number; cpu: number } {
  let sink = 0;
  // Warm-up for the JIT, bounded in time because the unindexed case is slow.
  const warm = performance.now() + 300;
  for (let i = 0; i < 20_000 && performance.now() < warm; i++) sink += fn(pool[i % pool.length] as Decision);
  const end = performance.now() + SECONDS * 1000;
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) sink += fn(pool[(n + i) % pool.length] as Decision);
    n += 100;
  }
  const dt = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  if (sink === -1) console.log(sink);
  return { wall: n / dt, cpu: n / ((c.user + c.system) / 1e6) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');

/** The routing module of git revision `rev`, extracted beside a link to this project's node_modules. */
async function baseline(rev: string): Promise<Routing> {
  const root = resolve(import.meta.dirname, '..');
  const dir = mkdtempSync(join(tmpdir(), 'cds-routing-baseline-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const tar = execFileSync('git', ['-C', root, 'archive', rev, 'src'], { maxBuffer: 1 << 28 });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return (await import(pathToFileURL(join(dir, 'src/routing/index.ts')).href)) as Routing;
}

type Case = [string, (d: Decision) => number];

function cases(impl: Routing): Case[] {
  const indexed = impl.compileRuleSet({ rules: indexedRules() });
  const unindexed = impl.compileRuleSet({ rules: unindexedRules() });
  const subs1000 = matcher(impl, 1000);
  const subs10 = matcher(impl, 10);
  return [
    [
      'route (1,000 indexed rules) + match (1,000 indexed subscriptions)',
      (d) => {
        const o = indexed.route(d, now);
        return o.topics.length + subs1000.match(d, o.topics).length;
      },
    ],
    ['route only, 1,000 indexed rules', (d) => indexed.route(d, now).topics.length],
    ['match only, 1,000 indexed subscriptions', (d) => subs1000.match(d, ['decisions.equity.pf-1']).length],
    ['match only, 10 indexed subscriptions', (d) => subs10.match(d, ['decisions.equity.pf-1']).length],
    [
      'route (1,000 rules, none indexable) + match (1,000 indexed subscriptions)',
      (d) => {
        const o = unindexed.route(d, now);
        return o.topics.length + subs1000.match(d, o.topics).length;
      },
    ],
  ];
}

const pool = decisions(10_000);
const now = Date.now();
const mine = cases(current);
const theirs = BASELINE === undefined ? undefined : cases(await baseline(BASELINE));

const sample = current.compileRuleSet({ rules: indexedRules() }).route(pool[0] as Decision, now);
console.log(
  `node ${process.version}; ${SECONDS}s per run; 3 runs per case${BASELINE === undefined ? '' : `, alternating with baseline ${BASELINE}`}; sample outcome topics ${JSON.stringify(sample.topics)}`,
);
const only = process.env.BENCH_CASE;
for (let c = 0; c < mine.length; c++) {
  const [name, fn] = mine[c] as Case;
  if (only !== undefined && !name.startsWith(only)) continue;
  const runs: Array<{ wall: number; cpu: number }> = [];
  const base: Array<{ wall: number; cpu: number }> = [];
  for (let k = 0; k < 3; k++) {
    runs.push(rate(pool, fn));
    if (theirs !== undefined) base.push(rate(pool, (theirs[c] as Case)[1]));
  }
  const cpu = runs.map((x) => x.cpu);
  const wall = runs.map((x) => x.wall);
  let line = `${name}: median ${fmt(median(cpu))}/s per CPU second (runs ${cpu.map(fmt).join(', ')}), ${fmt(median(wall))}/s wall`;
  if (theirs !== undefined) {
    const ratios = runs.map((x, k) => x.cpu / (base[k] as { cpu: number }).cpu);
    line += `; baseline ${fmt(median(base.map((x) => x.cpu)))}/s per CPU second; ratio median ${median(ratios).toFixed(1)}x (pairs ${ratios.map((x) => x.toFixed(1)).join(', ')})`;
  }
  console.log(line);
}
