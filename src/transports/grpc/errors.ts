/**
 * Registry errors as gRPC statuses (ADR 0012): the status code from the registry, the message, and
 * a google.rpc.Status in the `grpc-status-details-bin` trailer with an ErrorInfo (the registry code),
 * a BadRequest listing field violations for INVALID_ARGUMENT, and a RetryInfo for
 * RESOURCE_EXHAUSTED and UNAVAILABLE.
 */
import { Metadata, type ServiceError, status as GrpcCode } from '@grpc/grpc-js';
import { CdsError, isCdsError, type FieldError } from '../../errors/index.ts';
import type { StreamError } from './gen/cds/v1/common.ts';
import { BadRequest, ErrorInfo, RetryInfo } from './gen/google/rpc/error_details.ts';
import { Status } from './gen/google/rpc/status.ts';

/** The trailer carrying the rich status. */
export const DETAILS_TRAILER = 'grpc-status-details-bin';
/** A plain-text trailer with the registry code, for clients that do not decode the details. */
export const CODE_TRAILER = 'cds-error-code';
const TYPE = 'type.googleapis.com/google.rpc.';

/** Any error as a CdsError (unexpected ones become INTERNAL with their cause). */
export function asCdsError(e: unknown): CdsError {
  return isCdsError(e) ? e : new CdsError('INTERNAL', 'internal error', { cause: e });
}

function fieldErrors(e: CdsError): readonly FieldError[] {
  const list = e.details?.['errors'];
  return Array.isArray(list) ? (list as FieldError[]) : [];
}

function retryMs(e: CdsError): number | undefined {
  const code = e.spec.grpc;
  if (code !== GrpcCode.RESOURCE_EXHAUSTED && code !== GrpcCode.UNAVAILABLE) return undefined;
  return Math.ceil(Math.max(1, e.retryAfterSeconds ?? 1) * 1000); // whole ms: protobuf ints reject fractions
}

/**
 * NOT_OWNER (cluster mode, ADR 0015): the instance that dispatches the subscription, as ErrorInfo
 * metadata (`owner`, `ownerGrpc`, `ownerUrl`), so that a client reconnects there.
 */
function ownerMetadata(e: CdsError): Record<string, string> {
  const o = e.details?.['owner'] as { id?: unknown; url?: unknown; grpc?: unknown } | null | undefined;
  if (o === null || typeof o !== 'object') return {};
  const out: Record<string, string> = {};
  if (typeof o.id === 'string') out['owner'] = o.id;
  if (typeof o.grpc === 'string') out['ownerGrpc'] = o.grpc;
  if (typeof o.url === 'string') out['ownerUrl'] = o.url;
  return out;
}

/** The google.rpc.Status of an error, encoded. */
export function statusDetails(e: CdsError): Buffer {
  const details = [
    {
      typeUrl: `${TYPE}ErrorInfo`,
      value: ErrorInfo.encode({
        reason: e.code,
        domain: 'cds',
        metadata: { retriable: String(e.retriable), ...ownerMetadata(e) },
      }).finish(),
    },
  ] as { typeUrl: string; value: Uint8Array }[];
  const fields = fieldErrors(e);
  if (e.spec.grpc === GrpcCode.INVALID_ARGUMENT) {
    details.push({
      typeUrl: `${TYPE}BadRequest`,
      value: BadRequest.encode({
        fieldViolations: (fields.length > 0 ? fields : [{ path: '', code: e.code, message: e.message }]).map(
          (f) => ({ field: f.path, description: f.message, reason: f.code }),
        ),
      }).finish(),
    });
  }
  const ms = retryMs(e);
  if (ms !== undefined) {
    details.push({
      typeUrl: `${TYPE}RetryInfo`,
      value: RetryInfo.encode({
        retryDelay: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 },
      }).finish(),
    });
  }
  return Buffer.from(
    Status.encode({
      code: e.spec.grpc,
      message: e.message,
      details: details.map((d) => ({ typeUrl: d.typeUrl, value: Buffer.from(d.value) })),
    }).finish(),
  );
}

/** The status a call ends with for an error. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const e = asCdsError(err);
  const metadata = new Metadata();
  metadata.set(CODE_TRAILER, e.code);
  try {
    metadata.set(DETAILS_TRAILER, statusDetails(e));
  } catch {
    // The status itself must always be sent; its details are a best effort.
  }
  return { code: e.spec.grpc, details: e.message, metadata };
}

/** The in-stream form of an error (the stream goes on). */
export function toStreamError(err: unknown): StreamError {
  const e = asCdsError(err);
  return {
    code: e.code,
    grpcCode: e.spec.grpc,
    message: e.message,
    retriable: e.retriable,
    fieldErrors: fieldErrors(e).map((f) => ({ path: f.path, code: f.code, message: f.message })),
    retryAfterMs: retryMs(e) ?? 0,
  };
}

/** A VALIDATION_FAILED error about one field. */
export function fieldError(path: string, message: string, code = 'invalid'): CdsError {
  return new CdsError('VALIDATION_FAILED', message, { details: { errors: [{ path, code, message }] } });
}
