/** The facts about where a benchmark ran, recorded with every result. */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem, release } from 'node:os';

/** The machine a result was measured on. */
export interface MachineInfo {
  readonly cpus: number;
  readonly model: string;
  readonly memoryMb: number;
  readonly node: string;
  readonly kernel: string;
  /** 1, 5 and 15 minute load averages when the result was written: other work on a shared machine. */
  readonly loadAvg: readonly number[];
}

/** Describes this machine. */
export function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    cpus: c.length,
    model: c[0]?.model ?? 'unknown',
    memoryMb: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    kernel: release(),
    loadAvg: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** The checked-out commit, and whether the working tree had changes. */
export function gitCommit(cwd: string): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd,
      encoding: 'utf8',
    });
    return { commit, dirty: status.trim() !== '' };
  } catch {
    return { commit: 'unknown', dirty: true };
  }
}
