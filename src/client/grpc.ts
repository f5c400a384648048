/**
 * A TypeScript gRPC client of cds (ADR 0012): typed clients of DecisionService and
 * SubscriptionService, credentials as metadata, and the rich error details of a failed call
 * (google.rpc.Status from the `grpc-status-details-bin` trailer) decoded.
 */
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { DecisionServiceClient } from '../transports/grpc/gen/cds/v1/decisions.ts';
import { SubscriptionServiceClient } from '../transports/grpc/gen/cds/v1/subscriptions.ts';
import { BadRequest, ErrorInfo, RetryInfo } from '../transports/grpc/gen/google/rpc/error_details.ts';
import { Status } from '../transports/grpc/gen/google/rpc/status.ts';

export { DecisionServiceClient, SubscriptionServiceClient };

/** Metadata carrying an API key or JWT as `authorization: Bearer ...`. */
export function bearer(token: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** Both service clients on one address (`host:port`), without TLS. */
export function connect(address: string): {
  decisions: DecisionServiceClient;
  subscriptions: SubscriptionServiceClient;
  close(): void;
} {
  const creds = credentials.createInsecure();
  const decisions = new DecisionServiceClient(address, creds);
  const subscriptions = new SubscriptionServiceClient(address, creds, {
    channelOverride: decisions.getChannel(),
  } as never);
  return {
    decisions,
    subscriptions,
    close() {
      decisions.close();
      subscriptions.close();
    },
  };
}

/** What the server said about a failed call, from its trailers. */
export interface ErrorDetails {
  readonly grpcCode: number;
  readonly message: string;
  /** The cds registry code (ErrorInfo.reason), when present. */
  readonly code?: string;
  readonly retriable?: boolean;
  /** BadRequest field violations. */
  readonly fieldViolations: { field: string; description: string; reason: string }[];
  /** RetryInfo, in milliseconds. */
  readonly retryDelayMs?: number;
}

/** Decodes the rich status of a failed call. */
export function errorDetails(err: Partial<ServiceError>): ErrorDetails {
  const raw = err.metadata?.get('grpc-status-details-bin')[0];
  const out: {
    grpcCode: number;
    message: string;
    code?: string;
    retriable?: boolean;
    fieldViolations: ErrorDetails['fieldViolations'];
    retryDelayMs?: number;
  } = { grpcCode: err.code ?? 2, message: err.details ?? '', fieldViolations: [] };
  if (!Buffer.isBuffer(raw)) return out;
  const status = Status.decode(raw);
  out.message = status.message;
  for (const d of status.details) {
    const type = d.typeUrl.slice(d.typeUrl.lastIndexOf('/') + 1);
    if (type === 'google.rpc.ErrorInfo') {
      const info = ErrorInfo.decode(d.value);
      out.code = info.reason;
      out.retriable = info.metadata['retriable'] === 'true';
    } else if (type === 'google.rpc.BadRequest') {
      out.fieldViolations.push(...BadRequest.decode(d.value).fieldViolations);
    } else if (type === 'google.rpc.RetryInfo') {
      const r = RetryInfo.decode(d.value).retryDelay;
      if (r !== undefined) out.retryDelayMs = r.seconds * 1000 + Math.round(r.nanos / 1e6);
    }
  }
  return out;
}
