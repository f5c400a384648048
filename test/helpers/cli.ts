/** The `cds` command run in-process (runCli with captured output), for tests and benchmarks. */
import { runCli } from '../../src/cli/index.ts';

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
