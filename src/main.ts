/** Process entry: the only file that reads argv and the environment. */
import { runCli } from './cli/index.ts';

const code = await runCli({
  argv: process.argv.slice(2),
  env: process.env,
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
});
process.exitCode = code;
