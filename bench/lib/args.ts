/** Command-line options of `npm run bench -- <workload> [options]`. */
import type { BenchOptions } from './workload.ts';

/** Parsed command line. */
export interface CliArgs {
  readonly workload: string;
  /** Overrides of the workload's defaults. */
  readonly overrides: Partial<BenchOptions>;
  readonly out: string | undefined;
  /** A running service to use instead of starting one. */
  readonly url: string | undefined;
  readonly key: string | undefined;
  readonly findMax: boolean;
  /** find-max: bisection steps after the first failing rate. */
  readonly steps: number;
  /** Extra CDS_* environment for the started service (`--env NAME=VALUE`, repeatable). */
  readonly env: Readonly<Record<string, string>>;
  readonly help: boolean;
}

/** The usage text. */
export const USAGE = `usage: npm run bench -- <workload> [options]
workloads: ingest
  --rate N          offered decisions/s (default per workload)
  --duration S      measured seconds (default 20)
  --warmup S        seconds of load before measuring (default 2)
  --batch N         decisions per request (default 500)
  --connections N   keep-alive connections (default 4)
  --seed N          seed of the decision generator (default 1)
  --portfolios N    distinct portfolios (default 200)
  --window S        rate window in seconds (default 5)
  --no-verify       skip the count of stored decisions afterwards (lost is then unknown)
  --out FILE        result file (default bench/results/<workload>-<timestamp>.json)
  --url URL --key K use a running service instead of starting one
  --env NAME=VALUE  extra environment of the started service (repeatable)
  --find-max        raise the rate x1.5 from --rate until a run is not sustained, then bisect
  --steps N         find-max: bisection steps (default 3)`;

/** Parses argv (without node and the script). Throws on an unknown option. */
export function parseArgs(argv: readonly string[]): CliArgs {
  const overrides: Record<string, unknown> = {};
  const env: Record<string, string> = {};
  let workload = '';
  let out: string | undefined;
  let url: string | undefined;
  let key: string | undefined;
  let findMax = false;
  let steps = 3;
  let help = false;
  const num = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] =
      a.startsWith('--') && a.includes('=')
        ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
        : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--rate':
        overrides['rate'] = num(flag, value());
        break;
      case '--duration':
        overrides['durationS'] = num(flag, value());
        break;
      case '--warmup':
        overrides['warmupS'] = Number(value() ?? 0);
        break;
      case '--batch':
        overrides['batch'] = Math.round(num(flag, value()));
        break;
      case '--connections':
        overrides['connections'] = Math.round(num(flag, value()));
        break;
      case '--seed':
        overrides['seed'] = Math.round(num(flag, value()));
        break;
      case '--portfolios':
        overrides['portfolios'] = Math.round(num(flag, value()));
        break;
      case '--window':
        overrides['windowS'] = num(flag, value());
        break;
      case '--no-verify':
        overrides['verify'] = 'none';
        break;
      case '--out':
        out = value();
        break;
      case '--url':
        url = value();
        break;
      case '--key':
        key = value();
        break;
      case '--env': {
        const kv = value() ?? '';
        const eq = kv.indexOf('=');
        if (eq <= 0 || !kv.startsWith('CDS_')) throw new Error(`--env needs CDS_NAME=VALUE, got '${kv}'`);
        env[kv.slice(0, eq)] = kv.slice(eq + 1);
        break;
      }
      case '--find-max':
        findMax = true;
        break;
      case '--steps':
        steps = Math.round(num(flag, value()));
        break;
      case '-h':
      case '--help':
        help = true;
        break;
      default:
        if (a.startsWith('-') || workload !== '') throw new Error(`unknown argument '${a}'\n${USAGE}`);
        workload = a;
    }
  }
  if (url !== undefined && key === undefined) throw new Error('--url needs --key');
  return {
    workload,
    overrides: overrides as Partial<BenchOptions>,
    out,
    url,
    key,
    findMax,
    steps,
    env,
    help,
  };
}
