/**
 * `cds tail SUBSCRIPTION`: a consumer of a subscription over a gRPC Session (ADR 0012) that prints
 * each delivery as a JSON line and acknowledges it; it reconnects and resumes by itself. TLS with
 * `--tls` (system CAs) or `--ca FILE`, mTLS with `--cert FILE --cert-key FILE`.
 */
import { readFileSync } from 'node:fs';
import { GrpcSubscriber, type GrpcTls } from '../client/grpc.ts';
import { CdsError } from '../errors/index.ts';
import type { CliIo } from './io.ts';

/** What `cds tail` was asked. */
export interface TailOptions {
  /** `host:port` of the gRPC listener. */
  readonly address: string;
  readonly token: string;
  readonly subscription: string;
  readonly tls: GrpcTls | undefined;
  /** Stop after this many deliveries (undefined: until interrupted). */
  readonly count: number | undefined;
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new CdsError('VALIDATION_FAILED', `--${flag}: cannot read ${file}: ${(e as Error).message}`);
  }
}

/** TLS options from the flags, or undefined for plaintext. */
export function tailTls(flags: {
  tls?: boolean | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  'cert-key'?: string | undefined;
  'server-name'?: string | undefined;
}): GrpcTls | undefined {
  const { ca, cert } = flags;
  const key = flags['cert-key'];
  const serverName = flags['server-name'];
  if (flags.tls !== true && ca === undefined && cert === undefined && key === undefined) {
    if (serverName !== undefined) throw new CdsError('VALIDATION_FAILED', '--server-name needs TLS');
    return undefined;
  }
  if ((cert === undefined) !== (key === undefined))
    throw new CdsError('VALIDATION_FAILED', '--cert and --cert-key go together');
  return {
    ...(ca === undefined ? {} : { ca: readPem('ca', ca) }),
    ...(cert === undefined ? {} : { cert: readPem('cert', cert) }),
    ...(key === undefined ? {} : { key: readPem('cert-key', key) }),
    ...(serverName === undefined ? {} : { serverName }),
  };
}

/** Runs the consumer; resolves with the exit code (0 after `count` deliveries, 1 on a final error). */
export async function tail(opts: TailOptions, io: CliIo): Promise<number> {
  const credits = 256;
  const sub = new GrpcSubscriber({
    address: opts.address,
    token: opts.token,
    subscription: opts.subscription,
    credits,
    ...(opts.tls === undefined ? {} : { tls: opts.tls }),
  });
  const stop = () => sub.close();
  process.once('SIGINT', stop);
  let n = 0;
  try {
    for await (const e of sub) {
      if (e.type === 'deliveries') {
        const take = opts.count === undefined ? e.deliveries : e.deliveries.slice(0, opts.count - n);
        for (const d of take) io.stdout(JSON.stringify(d));
        n += take.length;
        sub.ack(take.map((d) => d.position));
        if (opts.count !== undefined && n >= opts.count) sub.close();
        else sub.credit(e.deliveries.length);
      } else if (e.type === 'reconnecting') {
        io.stderr(
          `cds tail: ${e.error.code ?? e.error.grpcCode}: ${e.error.message}; again in ${e.delayMs} ms`,
        );
      } else if (e.type === 'error') {
        io.stderr(`cds tail: ${e.error.code ?? e.error.grpcCode}: ${e.error.message}`);
      } else if (e.type === 'closed' && e.error !== undefined) {
        io.stderr(`cds tail: ${e.error.code ?? e.error.grpcCode}: ${e.error.message}`);
        return 1;
      }
    }
    return 0;
  } finally {
    process.off('SIGINT', stop);
    sub.close();
  }
}
