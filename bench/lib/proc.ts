/**
 * CPU time and memory of another process, read from /proc (Linux). Used for the service, which
 * runs as a child of the harness; the generator reports its own figures with process.cpuUsage().
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { toMono } from './clock.ts';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** CPU seconds a process has used so far (user and system), or undefined when it is gone. */
export interface CpuTimes {
  readonly userS: number;
  readonly systemS: number;
}

/** Reads /proc/<pid>/stat: utime and stime are fields 14 and 15 (after the parenthesised name). */
export function cpuTimes(pid: number): CpuTimes | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const hz = clockTicks();
    return { userS: Number(rest[11]) / hz, systemS: Number(rest[12]) / hz };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds of a process and its descendants: the live ones' own times plus the root's waited-for
 * children's (cutime, cstime: fields 16 and 17), so that short-lived children (PostgreSQL backends)
 * that exited are counted too. Undefined when the root is gone.
 */
export function treeCpuTimes(root: number): CpuTimes | undefined {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  let rootStat: string;
  try {
    rootStat = readFileSync(`/proc/${root}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = rootStat.slice(rootStat.lastIndexOf(')') + 2).split(' ');
  const hz = clockTicks();
  let userS = Number(rest[13]) / hz;
  let systemS = Number(rest[14]) / hz;
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; hops++) {
      if (p === root) return true;
      p = parent.get(p);
    }
    return false;
  };
  for (const pid of parent.keys()) {
    if (!inTree(pid)) continue;
    const c = cpuTimes(pid);
    if (c === undefined) continue;
    userS += c.userS;
    systemS += c.systemS;
  }
  return { userS, systemS };
}

/** Resident set size now and its peak (VmRSS, VmHWM), in MB. */
export function memoryMb(pid: number): { rssMb: number; peakRssMb: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMb: kb('VmRSS') / 1024, peakRssMb: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** CPU used between two readings over `wallS` seconds: seconds and percent of one core. */
export interface CpuUse {
  readonly userS: number;
  readonly systemS: number;
  readonly totalS: number;
  readonly pctOfOneCore: number;
}

/** The CPU used between readings `a` and `b` taken `wallS` seconds apart. */
export function cpuBetween(a: CpuTimes, b: CpuTimes, wallS: number): CpuUse {
  const userS = b.userS - a.userS;
  const systemS = b.systemS - a.systemS;
  const totalS = userS + systemS;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { userS: r(userS), systemS: r(systemS), totalS: r(totalS), pctOfOneCore: r((100 * totalS) / wallS) };
}

/**
 * CPU and peak memory of every process of a run (the service, generators, subscriber processes),
 * all read from /proc the same way: CPU between {@link start} and {@link end}, peak RSS sampled
 * every 500 ms and read once more when a process is about to stop.
 */
export class ProcessMeter {
  readonly #pids = new Map<string, number>();
  /** Names followed with their descendants ({@link treeCpuTimes}). */
  readonly #trees = new Set<string>();
  readonly #first = new Map<string, CpuTimes>();
  readonly #last = new Map<string, CpuTimes>();
  readonly #peak = new Map<string, number>();
  #t0 = 0;
  #t1 = 0;
  readonly #timer: NodeJS.Timeout;

  constructor() {
    this.#timer = setInterval(() => this.sample(), 500);
    this.#timer.unref();
  }

  /**
   * Follows process `pid` under `name` (for example `subscribers-2`); with `tree`, its CPU includes
   * its descendants' (a PostgreSQL server's backends); its memory is the process's own.
   */
  track(name: string, pid: number, opts: { tree?: boolean } = {}): void {
    this.#pids.set(name, pid);
    if (opts.tree === true) this.#trees.add(name);
    else this.#trees.delete(name);
    if (this.#t0 !== 0 && this.#t1 === 0) {
      const c = this.#cpuOf(name, pid);
      if (c !== undefined) this.#first.set(name, c);
    }
  }

  #cpuOf(name: string, pid: number): CpuTimes | undefined {
    return this.#trees.has(name) ? treeCpuTimes(pid) : cpuTimes(pid);
  }

  /**
   * Reads peak RSS of every followed process now (call it before stopping one) and, in the measured
   * period, its CPU so far: a process that exits before {@link end} (a generator done before the
   * others) keeps its last reading instead of none.
   */
  sample(): void {
    const measuring = this.#t0 !== 0 && this.#t1 === 0;
    for (const [name, pid] of this.#pids) {
      if (measuring) {
        const c = this.#cpuOf(name, pid);
        if (c !== undefined) this.#last.set(name, c);
      }
      const m = memoryMb(pid);
      // An exiting process's status has no VmHWM line any more (NaN): its last reading stands.
      if (m !== undefined && Number.isFinite(m.peakRssMb))
        this.#peak.set(name, Math.max(this.#peak.get(name) ?? 0, m.peakRssMb));
    }
  }

  /** The measured period starts (again, if it had: a workload of two phases measures the second). */
  start(): void {
    this.#t0 = performance.now();
    this.#t1 = 0;
    this.#first.clear();
    this.#last.clear();
    for (const [name, pid] of this.#pids) {
      const c = this.#cpuOf(name, pid);
      if (c !== undefined) this.#first.set(name, c);
    }
  }

  /** The measured period ends. */
  end(): void {
    if (this.#t0 === 0 || this.#t1 !== 0) return;
    this.#t1 = performance.now();
    this.sample();
    for (const [name, pid] of this.#pids) {
      const c = this.#cpuOf(name, pid);
      if (c !== undefined) this.#last.set(name, c);
    }
  }

  /** The measured period in the shared monotonic clock (bench/lib/clock.ts), ms. */
  get windowMono(): { fromMono: number; toMono: number } {
    return { fromMono: toMono(this.#t0), toMono: toMono(this.#t1 === 0 ? performance.now() : this.#t1) };
  }

  /** Seconds between start() and end(). */
  get wallS(): number {
    return (this.#t1 - this.#t0) / 1000;
  }

  /** CPU per process over the measured period (null where a reading is missing). */
  cpu(): Record<string, CpuUse | null> {
    const out: Record<string, CpuUse | null> = {};
    for (const name of this.#pids.keys()) {
      const a = this.#first.get(name);
      const b = this.#last.get(name);
      out[name] = a !== undefined && b !== undefined ? cpuBetween(a, b, this.wallS) : null;
    }
    return out;
  }

  /** Peak RSS per process in MB (null where never read). */
  peakRssMb(): Record<string, number | null> {
    const out: Record<string, number | null> = {};
    for (const name of this.#pids.keys()) {
      const p = this.#peak.get(name);
      out[name] = p === undefined ? null : Math.round(p * 10) / 10;
    }
    return out;
  }

  /** Stops sampling. */
  close(): void {
    clearInterval(this.#timer);
  }
}
