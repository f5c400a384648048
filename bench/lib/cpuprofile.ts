/**
 * Where a process's time went: a V8 CPU profile (`node --cpu-prof`, one file per thread) reduced to
 * shares of busy time per area of the code base and per function, over the measured period only.
 *
 * A profile's sample times are V8 TimeTicks in microseconds, which on Linux read CLOCK_MONOTONIC:
 * the clock of bench/lib/clock.ts, so the harness's measured window (shared monotonic ms) selects the
 * samples directly. The files stay next to the result for flame graphs (Chrome DevTools, speedscope).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The parts of a `.cpuprofile` file read here. */
interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  }[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** A share of busy time. */
export interface Share {
  readonly name: string;
  /** Percent of the thread's busy (non-idle) samples in the window. */
  readonly pct: number;
}

/** One thread's profile over the window. */
export interface ThreadProfile {
  readonly file: string;
  /** 0 is the main thread; others are worker threads in creation order. */
  readonly thread: number;
  readonly windowS: number;
  /** Percent of the window the thread was running JavaScript, GC or native code (not idle). */
  readonly busyPct: number;
  readonly areas: readonly Share[];
  readonly functions: readonly Share[];
}

/**
 * Areas, first match wins: our modules by directory, the libraries they stand on with them, the
 * runtime's own work apart. A function is attributed by the file it is defined in (self time).
 */
const AREAS: readonly (readonly [string, RegExp])[] = [
  ['garbage collector', /^\(garbage collector\)$/],
  [
    'module loading (start-up)',
    /node:internal\/modules|cjs-module-lexer|nm:tsx|esbuild|compileSourceTextModule/,
  ],
  ['publish path (validate, route, encode)', /src\/ingest\/|src\/domain\/|^check|^RegExp:|src\/security\//],
  [
    'REST (fastify, JSON bodies)',
    /src\/transports\/rest\/|nm:fastify|nm:find-my-way|nm:@fastify|nm:avvio|node:_http/,
  ],
  ['delivery engine', /src\/delivery\/|src\/subscriptions\//],
  ['filters and routing', /src\/routing\//],
  ['WebSocket transport', /src\/transports\/ws\/|nm:ws$/],
  ['gRPC transport', /src\/transports\/grpc\/|nm:@grpc|nm:@bufbuild|nm:protobufjs/],
  ['segment log', /src\/adapters\/embedded\/log\/|fdatasync|^crc32|node:zlib/],
  [
    'LMDB state (index, cursors)',
    /src\/adapters\/embedded\/state\/|nm:lmdb|nm:msgpackr|nm:ordered-binary|wasm/,
  ],
  ['ledger', /src\/ledger\//],
  ['metrics and introspection', /nm:prom-client|src\/observability\/|src\/delivery\/introspect/],
  [
    'socket I/O and buffers',
    /^writev$|^writeBuffer|^writeUtf8String|^read$|stream_base_commons|node:net|node:internal\/streams|node:buffer|node:internal\/buffer|utf8Slice|utf8Write|node:internal\/http2/,
  ],
  ['worker messages', /postMessage|receiveMessageOnPort|node:internal\/worker/],
  ['Node runtime (events, timers, promises)', /^node:|^\(program\)$|runMicrotasks|processTicksAndRejections/],
];

function locationOf(url: string): string {
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm !== null) return `nm:${nm[1]}`;
  const src = /\/((?:src|bench|test)\/.*)$/.exec(url);
  return src?.[1] ?? url;
}

/** The area of a function defined at `location` (a repository path, `nm:<package>` or `node:...`). */
export function areaOf(functionName: string, location: string): string {
  for (const [name, re] of AREAS) if (re.test(location) || re.test(functionName)) return name;
  return 'other';
}

function top(m: Map<string, number>, busy: number, n: number): Share[] {
  return [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, t]) => ({ name, pct: Math.round((t / busy) * 1000) / 10 }));
}

/** One profile file over [fromMono, toMono] (shared monotonic ms); the whole profile without a window. */
export function summarizeProfile(
  file: string,
  window?: { readonly fromMono: number; readonly toMono: number },
  topN = 25,
): Omit<ThreadProfile, 'thread'> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const frames = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const from = window === undefined ? -Infinity : window.fromMono * 1000;
  const to = window === undefined ? Infinity : window.toMono * 1000;
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  let t = p.startTime;
  let first = Infinity;
  let last = -Infinity;
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < from || t > to) continue;
    first = Math.min(first, t - dt);
    last = Math.max(last, t);
    const f = frames.get(p.samples[i]!);
    if (f === undefined || f.functionName === '(idle)') continue;
    busy += dt;
    const loc = locationOf(f.url);
    const area = areaOf(f.functionName, loc);
    areas.set(area, (areas.get(area) ?? 0) + dt);
    const fn = `${f.functionName || '(anonymous)'} ${loc}${f.url === '' ? '' : `:${f.lineNumber + 1}`}`;
    fns.set(fn, (fns.get(fn) ?? 0) + dt);
  }
  const windowUs = Math.max(1, last - first);
  return {
    file,
    windowS: Math.round(windowUs / 1e4) / 100,
    busyPct: Math.round((busy / windowUs) * 1000) / 10,
    areas: top(areas, Math.max(1, busy), AREAS.length + 1),
    functions: top(fns, Math.max(1, busy), topN),
  };
}

/**
 * Every thread's profile in `dir` written by process `pid` (files `CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`),
 * main thread first.
 */
export function summarizeProfiles(
  dir: string,
  pid: number,
  window?: { readonly fromMono: number; readonly toMono: number },
): ThreadProfile[] {
  const out: ThreadProfile[] = [];
  for (const name of readdirSync(dir)) {
    const m = /^CPU\.\d+\.\d+\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(name);
    if (m === null || Number(m[1]) !== pid) continue;
    out.push({ thread: Number(m[2]), ...summarizeProfile(join(dir, name), window) });
  }
  return out.sort((a, b) => a.thread - b.thread);
}
