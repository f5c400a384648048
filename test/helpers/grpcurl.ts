/**
 * grpcurl (github.com/fullstorydev/grpcurl), the generic gRPC client the gRPC issue names, for tests
 * that talk to the service knowing nothing but its address. Found as CDS_TEST_GRPCURL, else `grpcurl`
 * on PATH, else in Go's bin directory (`go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4`,
 * which .ci/run does). Without it a test is skipped with the reason, except when `CI` is set: in CI a
 * skip is a failure.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

/** The version .ci/run installs. */
export const GRPCURL_MODULE = 'github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4';

function goBin(): string | undefined {
  try {
    const [gobin, gopath] = execFileSync('go', ['env', 'GOBIN', 'GOPATH'], { encoding: 'utf8' }).split('\n');
    if (gobin !== undefined && gobin.trim() !== '') return join(gobin.trim(), 'grpcurl');
    return gopath === undefined || gopath.trim() === '' ? undefined : join(gopath.trim(), 'bin', 'grpcurl');
  } catch {
    return undefined;
  }
}

/** The grpcurl executable, or why there is none (never returned when `CI` is set: it throws). */
export function findGrpcurl(): { readonly path: string } | { readonly skipped: string } {
  const env = process.env['CDS_TEST_GRPCURL'];
  const candidates = [
    ...(env ? [env] : []),
    ...(process.env['PATH'] ?? '').split(delimiter).map((d) => join(d, 'grpcurl')),
    join(homedir(), 'go', 'bin', 'grpcurl'),
  ];
  for (const c of candidates) if (c !== '' && existsSync(c)) return { path: c };
  const fromGo = goBin();
  if (fromGo !== undefined && existsSync(fromGo)) return { path: fromGo };
  const why = `grpcurl not found (CDS_TEST_GRPCURL, PATH, Go's bin); install: go install ${GRPCURL_MODULE}`;
  if (process.env['CI'] !== undefined && process.env['CI'] !== '')
    throw new Error(`grpcurl is required in CI but ${why}`);
  return { skipped: why };
}
