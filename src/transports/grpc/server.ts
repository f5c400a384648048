/**
 * The gRPC transport (DESIGN 7; ADR 0012): a grpc-js server with DecisionService, SubscriptionService,
 * the standard health service and server reflection, over plaintext, TLS or mTLS (`tls.ts`). Built
 * without listening; `listen()` binds, `drain()` turns health NOT_SERVING, `close()` ends open streams
 * with SHUTTING_DOWN (UNAVAILABLE, retry elsewhere) and shuts the server down.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import type { AppContext } from '../../app-context.ts';
import { CdsError } from '../../errors/index.ts';
import { tolerant } from './call.ts';
import { decisionService } from './decisions.ts';
import { passFrames } from './frames.ts';
import { DecisionServiceService } from './gen/cds/v1/decisions.ts';
import { SubscriptionServiceService } from './gen/cds/v1/subscriptions.ts';
import { HealthService } from './gen/grpc/health/v1/health.ts';
import { HealthState, healthService } from './health.ts';
import { StreamRegistry } from './streams.ts';
import { subscriptionService } from './subscriptions.ts';
import { linkableDescriptors } from './reflection.ts';
import { listenerSecurity } from './tls.ts';

/** Where the .proto sources are (for reflection). */
export const PROTO_DIR = fileURLToPath(new URL('../../../proto/', import.meta.url));
/** The .proto files the server serves, relative to PROTO_DIR. */
export const PROTO_FILES = [
  'cds/v1/common.proto',
  'cds/v1/decisions.proto',
  'cds/v1/subscriptions.proto',
  'grpc/health/v1/health.proto',
];
/** The types of rich error details (ADR 0012), served by reflection with the services. */
const ERROR_DETAIL_FILES = ['google/rpc/error_details.proto', 'google/rpc/status.proto'];
/** The reflection service's own proto (listed too, so that generic clients see every service). */
const REFLECTION_INCLUDE = join(
  dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json')),
  'build/proto',
);
/** Fully qualified names of the cds services. */
export const SERVICES = ['cds.v1.DecisionService', 'cds.v1.SubscriptionService'] as const;
/** How long close() waits for calls to finish before cancelling them. */
const SHUTDOWN_GRACE_MS = 2000;

/** A built gRPC server. */
export interface GrpcServer {
  /** Binds; resolves with `host:port` (port 0 picks a free one). */
  listen(host: string, port: number): Promise<string>;
  /** Health turns NOT_SERVING (the start of a shutdown). */
  drain(): void;
  /** Ends open streams with SHUTTING_DOWN and shuts down. */
  close(): Promise<void>;
  /** Streams open now. */
  readonly openStreams: () => number;
}

/** Options of {@link buildGrpcServer}. */
export interface GrpcServerOptions {
  /** Interval of the server's heartbeats on every stream (default 15,000 ms). */
  readonly heartbeatMs?: number;
}

/** Builds the gRPC server from the app's services (not listening). */
export function buildGrpcServer(ctx: AppContext, opts: GrpcServerOptions = {}): GrpcServer {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const max = ctx.config.http.bodyLimitBytes;
  const security = listenerSecurity(ctx.config.grpc.tls); // bad files stop the start, before any listener
  const server = new grpc.Server({
    'grpc.max_receive_message_length': max,
    'grpc.max_send_message_length': 64 << 20,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });
  const streams = new StreamRegistry();
  const health = new HealthState(SERVICES);
  server.addService(
    tolerant(passFrames(DecisionServiceService)),
    decisionService(ctx, streams, heartbeatMs) as never,
  );
  server.addService(
    tolerant(passFrames(SubscriptionServiceService)),
    subscriptionService(ctx, streams, heartbeatMs) as never,
  );
  server.addService(HealthService, healthService(health) as never);
  // The error detail types too (google.rpc.BadRequest, RetryInfo, ErrorInfo): a generic client such
  // as grpcurl resolves an error's details by reflection and shows them decoded.
  const pkg = protoLoader.loadSync(
    [...PROTO_FILES, ...ERROR_DETAIL_FILES, 'grpc/reflection/v1/reflection.proto'],
    { includeDirs: [PROTO_DIR, REFLECTION_INCLUDE], keepCase: true }, // field names as in the .proto files
  );
  new ReflectionService(linkableDescriptors(pkg)).addToServer(server);
  let bound = false;

  return {
    openStreams: () => streams.size,
    async listen(host, port) {
      const actual = await new Promise<number>((resolve, reject) =>
        server.bindAsync(`${host}:${port}`, security.credentials, (e, p) => (e ? reject(e) : resolve(p))),
      );
      bound = true;
      health.setAll(true);
      ctx.logger.info({ grpc: `${host}:${actual}`, security: security.mode }, 'gRPC listening');
      return `${host}:${actual}`;
    },
    drain() {
      health.setAll(false);
    },
    async close() {
      health.setAll(false);
      streams.endAll(
        new CdsError(
          'SHUTTING_DOWN',
          'this instance is shutting down; reconnect elsewhere or after restart',
          {
            retryAfterSeconds: 1,
          },
        ),
      );
      if (!bound) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, SHUTDOWN_GRACE_MS);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };
}
