/**
 * CPU time and memory of another process, read from /proc (Linux). Used for the service, which
 * runs as a child of the harness; the generator reports its own figures with process.cpuUsage().
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

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
