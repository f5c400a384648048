/** The `cds` command run in-process (runCli with captured output) or as a process, for tests and benchmarks. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runCli } from '../../src/cli/index.ts';
import { REPO_ROOT } from './server.ts';

/** What one command did. */
export interface CdsRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs `cds <argv>` in this process with an empty environment; never throws for a failed command. */
export async function runCds(...argv: string[]): Promise<CdsRun> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli({ argv, env: {}, stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** What one command run as a process did (its output as written, its exit code, how long it took). */
export interface CdsProcessRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/**
 * Runs `cds <args>` as a child process (`node --import tsx src/main.ts`) with only PATH and `env`:
 * for commands that write their data straight to standard output (`cds replay`) or must start clean.
 */
export async function runCdsProcess(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
): Promise<CdsProcessRun> {
  const t0 = performance.now();
  try {
    const r = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'src/main.ts'), ...args],
      { cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '', ...env }, maxBuffer: 64 * 1024 * 1024 },
    );
    return { code: 0, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr, ms: performance.now() - t0 };
  }
}
