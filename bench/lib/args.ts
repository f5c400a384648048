/** Command-line options of `npm run bench -- <workload> [options]`. */
import { resolve } from 'node:path';
import type { BenchOptions } from './workload.ts';

/** Parsed command line. */
export interface CliArgs {
  readonly workload: string;
  /** Overrides of the workload's defaults. */
  readonly overrides: Partial<BenchOptions>;
  readonly out: string | undefined;
  /** A running service to use instead of starting one (REST base URL, gRPC host:port, key). */
  readonly url: string | undefined;
  readonly grpc: string | undefined;
  readonly key: string | undefined;
  readonly findMax: boolean;
  /** find-max: bisection steps after the first failing rate. */
  readonly steps: number;
  /** Extra CDS_* environment for the started service (`--env NAME=VALUE`, repeatable). */
  readonly env: Readonly<Record<string, string>>;
  /** Run the started service under `node --cpu-prof` and summarize where its time went. */
  readonly cpuProfile: boolean;
  readonly help: boolean;
}

/** The usage text. */
export const USAGE = `usage: npm run bench -- <workload> [options]
workloads:
  ingest       durable publish only (REST batches); lost = acknowledged but not stored
  fanout       the seed's workload: --rate decisions/s to --subscribers filtered subscribers
               (bench/workloads/fanout-profile.json; default 200,000/s for 60 s, 200 subscribers)
  subscribers  the fanout profile at --rate (default 50,000/s) with 1, 100, 1,000, 2,000 subscribers
  latency      the fanout profile at 10,000, 50,000 and 100,000 decisions/s
  replay       publish --count decisions, then --subscribers replay them from earliest
  cluster      the fanout profile on --instances \`cds serve\` in cluster mode on Pulsar standalone
               and PostgreSQL (default 500/s for 20 s, 20 subscribers, 2 instances), then
               pulsar-perf produce and consume on the same namespace and partitions
               (PULSAR_TEST_WEB_SERVICE_URL/PULSAR_TEST_BROKER_SERVICE_URL, CDS_TEST_POSTGRES_URL:
               use running servers)
options (defaults per workload):
  --rate N                offered decisions/s
  --duration S            measured seconds
  --warmup S              seconds of load before measuring
  --subscribers N         subscribers (subscribers workload: a single step of N)
  --out FILE              result file (default bench/results/<workload>-<timestamp>.json); the
                          plot is FILE with .svg; sequence steps are FILE-<step>.json/.svg,
                          find-max steps FILE-rate-<rate>.json/.svg
  --rates A,B,...         latency: the rates of the sequence
  --ladder A,B,...        subscribers: the subscriber counts of the sequence
  --count N               replay: decisions published before the replay
  --instances N           cluster: \`cds serve\` processes (default 2)
  --partitions N          cluster: partitions of the Pulsar topic (default 4)
  --subscriber-processes N  processes the subscribers run in (default 4)
  --grpc-share F          share of subscribers on gRPC Sessions, the rest WebSocket (profile: 0.5)
  --generators N          generator processes sharing the open-loop schedule (default 1)
  --profile FILE          the workload profile (default bench/workloads/fanout-profile.json)
  --drain S               longest wait for the last deliveries after the last acknowledgement
  --batch N               decisions per publish request
  --connections N         keep-alive connections per generator
  --seed N                ingest: seed of the decision generator
  --portfolios N          ingest: distinct portfolios
  --window S              rate window in seconds (default 5)
  --no-verify             ingest: skip the count of stored decisions afterwards (lost is then unknown)
  --url URL --grpc H:P --key K   use a running service instead of starting one
  --env NAME=VALUE        extra environment of the started service (repeatable)
  --cpu-profile           profile the started service (node --cpu-prof, every thread): the files go
                          to FILE-cpuprofile/, the result gets each thread's busy share per area
  --find-max              raise the rate x1.5 from --rate until a run is not sustained, then bisect
  --steps N               find-max: bisection steps (default 3)`;

/** Parses argv (without node and the script). Throws on an unknown option. */
export function parseArgs(argv: readonly string[]): CliArgs {
  const overrides: Record<string, unknown> = {};
  const env: Record<string, string> = {};
  let workload = '';
  let out: string | undefined;
  let url: string | undefined;
  let grpc: string | undefined;
  let key: string | undefined;
  let findMax = false;
  let steps = 3;
  let help = false;
  let cpuProfile = false;
  const num = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number`);
    return n;
  };
  const list = (name: string, v: string | undefined): number[] =>
    (v ?? '').split(',').map((x) => Math.round(num(name, x.trim().replace(/_/g, ''))));
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
      case '--subscribers':
        overrides['subscribers'] = Math.round(num(flag, value()));
        break;
      case '--subscriber-processes':
        overrides['subscriberProcesses'] = Math.round(num(flag, value()));
        break;
      case '--grpc-share': {
        const f = Number(value());
        if (!(f >= 0 && f <= 1)) throw new Error('--grpc-share needs a number from 0 to 1');
        overrides['grpcShare'] = f;
        break;
      }
      case '--generators':
        overrides['generators'] = Math.round(num(flag, value()));
        break;
      case '--profile':
        overrides['profile'] = resolve(value() ?? '');
        break;
      case '--drain':
        overrides['drainS'] = num(flag, value());
        break;
      case '--count':
        overrides['count'] = Math.round(num(flag, value()));
        break;
      case '--instances':
        overrides['instances'] = Math.round(num(flag, value()));
        break;
      case '--partitions':
        overrides['partitions'] = Math.round(num(flag, value()));
        break;
      case '--rates':
        overrides['rates'] = list(flag, value());
        break;
      case '--ladder':
        overrides['ladder'] = list(flag, value());
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
      case '--grpc':
        grpc = value();
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
      case '--cpu-profile':
        cpuProfile = true;
        break;
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
  if (url !== undefined && workload === 'cluster')
    throw new Error('cluster starts its own instances: no --url (running Pulsar and PostgreSQL: see --help)');
  if (
    url !== undefined &&
    grpc === undefined &&
    overrides['grpcShare'] !== 0 &&
    ['fanout', 'subscribers', 'latency', 'replay'].includes(workload)
  )
    throw new Error('--url needs --grpc host:port for gRPC subscribers (or --grpc-share 0)');
  return {
    workload,
    overrides: overrides as Partial<BenchOptions>,
    out,
    url,
    grpc,
    key,
    findMax,
    steps,
    env,
    cpuProfile,
    help,
  };
}
