/**
 * The error-code registry: every failure the service reports has one stable code here, mapped once
 * to its HTTP status, gRPC status code and WebSocket close code. Codes are never reused or renamed;
 * docs/errors.md lists every one of them (a test checks that it does).
 */

/** gRPC status codes used by the registry (numeric values from grpc/status.proto). */
export const GrpcStatus = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** What one registry entry says about a code. */
export interface ErrorSpec {
  /** HTTP status answered for it. */
  readonly http: number;
  /** gRPC status code answered for it. */
  readonly grpc: number;
  /** WebSocket close code when it ends a stream (4000-4499: retry; 4500-4999: terminal). */
  readonly ws: number;
  /** Whether the same request may succeed if retried later unchanged. */
  readonly retriable: boolean;
  /** One sentence for docs/errors.md. */
  readonly doc: string;
}

const spec = (http: number, grpc: number, ws: number, retriable: boolean, doc: string): ErrorSpec => ({
  http,
  grpc,
  ws,
  retriable,
  doc,
});

/** Every error code of the service. */
export const ERROR_CODES = {
  VALIDATION_FAILED: spec(
    400,
    GrpcStatus.INVALID_ARGUMENT,
    4500,
    false,
    'The input does not match its schema; `details.errors` lists every failing field by path with a code.',
  ),
  MALFORMED_JSON: spec(400, GrpcStatus.INVALID_ARGUMENT, 4501, false, 'The body is not well-formed JSON.'),
  UNSUPPORTED_MEDIA_TYPE: spec(
    415,
    GrpcStatus.INVALID_ARGUMENT,
    4502,
    false,
    'The Content-Type is not one the endpoint accepts (application/json, or application/x-ndjson where stated).',
  ),
  PAYLOAD_TOO_LARGE: spec(
    413,
    GrpcStatus.RESOURCE_EXHAUSTED,
    4503,
    false,
    'The body is larger than `http.bodyLimitBytes`.',
  ),
  BATCH_TOO_LARGE: spec(
    413,
    GrpcStatus.INVALID_ARGUMENT,
    4504,
    false,
    'A batch holds more decisions than `ingest.maxBatch`.',
  ),
  INVALID_QUERY: spec(
    400,
    GrpcStatus.INVALID_ARGUMENT,
    4505,
    false,
    'A query-string parameter is unknown or has a bad value; `details.errors` names it.',
  ),
  INVALID_CURSOR: spec(
    400,
    GrpcStatus.INVALID_ARGUMENT,
    4506,
    false,
    'A pagination cursor is malformed, was altered, or belongs to another query.',
  ),
  REVISION_CONFLICT: spec(
    409,
    GrpcStatus.ALREADY_EXISTS,
    4507,
    false,
    'A revision at or below the highest stored one of this decisionId arrived with a different body.',
  ),
  IDENTITY_CHANGED: spec(
    409,
    GrpcStatus.FAILED_PRECONDITION,
    4508,
    false,
    'A new revision changes a field that identifies the decision (portfolioId, strategyId, accountId, instrument).',
  ),
  EPOCH_MISMATCH: spec(
    409,
    GrpcStatus.FAILED_PRECONDITION,
    4509,
    false,
    'A position from another epoch of the log (it was restored or reset); start again from a fresh position.',
  ),
  INVALID_POSITION: spec(
    400,
    GrpcStatus.FAILED_PRECONDITION,
    4510,
    false,
    'A position is malformed, or outside the log.',
  ),
  NOT_FOUND: spec(404, GrpcStatus.NOT_FOUND, 4511, false, 'The named resource does not exist.'),
  ROUTE_NOT_FOUND: spec(404, GrpcStatus.UNIMPLEMENTED, 4512, false, 'No such endpoint or method.'),
  METHOD_NOT_ALLOWED: spec(
    405,
    GrpcStatus.UNIMPLEMENTED,
    4513,
    false,
    'The endpoint exists but not with this HTTP method.',
  ),
  ALREADY_EXISTS: spec(
    409,
    GrpcStatus.ALREADY_EXISTS,
    4514,
    false,
    'A resource with that name already exists.',
  ),
  UNAUTHENTICATED: spec(
    401,
    GrpcStatus.UNAUTHENTICATED,
    4540,
    false,
    'No credentials, or credentials that are unknown, revoked, expired or badly signed.',
  ),
  FORBIDDEN: spec(
    403,
    GrpcStatus.PERMISSION_DENIED,
    4541,
    false,
    'The principal is known but lacks the scope (action and topic pattern) the request needs.',
  ),
  RATE_LIMITED: spec(
    429,
    GrpcStatus.RESOURCE_EXHAUSTED,
    4029,
    true,
    "The principal's request or decision rate limit is exceeded; retry after `Retry-After` seconds.",
  ),
  SHUTTING_DOWN: spec(
    503,
    GrpcStatus.UNAVAILABLE,
    4001,
    true,
    'This instance is draining for shutdown; retry (elsewhere) after `Retry-After` seconds. Nothing was stored.',
  ),
  NOT_READY: spec(503, GrpcStatus.UNAVAILABLE, 4002, true, 'The instance is still starting; retry shortly.'),
  STORAGE_UNAVAILABLE: spec(
    503,
    GrpcStatus.UNAVAILABLE,
    4003,
    true,
    'A storage layer could not complete the operation; nothing was acknowledged. Retry.',
  ),
  CONFIG_INVALID: spec(
    500,
    GrpcStatus.INVALID_ARGUMENT,
    4515,
    false,
    'The configuration (file, CDS_* variables or flags) is invalid; the message names the key. Reported at start.',
  ),
  DATA_DIR_LOCKED: spec(
    500,
    GrpcStatus.FAILED_PRECONDITION,
    4516,
    false,
    'Another cds process holds the data directory.',
  ),
  DATA_CORRUPT: spec(
    500,
    GrpcStatus.INTERNAL,
    4517,
    false,
    'Stored data failed its integrity check somewhere other than the torn tail of the log (which is cut automatically).',
  ),
  AUDIT_CHAIN_BROKEN: spec(
    500,
    GrpcStatus.INTERNAL,
    4518,
    false,
    'verify-audit found a record whose hash or link does not match (edited, removed or reordered).',
  ),
  INTERNAL: spec(500, GrpcStatus.INTERNAL, 4004, true, 'An unexpected fault; it is logged with its cause.'),
  VERSION_CONFLICT: spec(
    409,
    GrpcStatus.ABORTED,
    4519,
    false,
    'The resource changed since the version the request names; read it again and retry with its version.',
  ),
  UNKNOWN_DELIVERY: spec(
    404,
    GrpcStatus.NOT_FOUND,
    4520,
    false,
    'An ack or nack names a position this subscription has not delivered (or that was sought away); it concerns that position alone.',
  ),
  SLOW_CONSUMER: spec(
    503,
    GrpcStatus.RESOURCE_EXHAUSTED,
    4005,
    true,
    'The subscription fell further behind than its `lagLimit` under the `disconnect` policy; reconnect (unacknowledged deliveries come again).',
  ),
  NOT_ACCEPTABLE: spec(
    406,
    GrpcStatus.INVALID_ARGUMENT,
    4521,
    false,
    'The Accept header names no media type the endpoint answers (text/event-stream for the SSE endpoint).',
  ),
  TARGET_NOT_EMPTY: spec(
    409,
    GrpcStatus.FAILED_PRECONDITION,
    4530,
    false,
    'A backup or restore target directory exists and is not empty; nothing was written. Name a new or empty directory.',
  ),
  BACKUP_INCOMPLETE: spec(
    422,
    GrpcStatus.FAILED_PRECONDITION,
    4531,
    false,
    'The backup directory has no manifest.json (written last): the backup did not finish. Restore refuses it.',
  ),
  BACKUP_CORRUPT: spec(
    422,
    GrpcStatus.FAILED_PRECONDITION,
    4532,
    false,
    'A backup file is missing, or its size or SHA-256 differs from the manifest, or the manifest is unreadable; the message names the file.',
  ),
  BACKUP_IN_PROGRESS: spec(
    409,
    GrpcStatus.ABORTED,
    4010,
    true,
    'Another backup of this instance is running; retry when it has finished.',
  ),
  NOT_SUPPORTED: spec(
    501,
    GrpcStatus.UNIMPLEMENTED,
    4533,
    false,
    'The operation is not available in this run mode (for example `cds backup` with state on PostgreSQL).',
  ),
  UNKNOWN_TOPIC: spec(
    404,
    GrpcStatus.NOT_FOUND,
    4560,
    false,
    'Nothing was ever stored on the topic (or on any topic the pattern matches): no decision in the decision index carries it.',
  ),
  POSITION_TRIMMED: spec(
    410,
    GrpcStatus.OUT_OF_RANGE,
    4561,
    false,
    'A position lies before the first record the log still holds (retention removed it); `details.first` is where the log starts now.',
  ),
  NOT_OWNER: spec(
    421,
    GrpcStatus.UNAVAILABLE,
    4020,
    true,
    'A subscription is dispatched by another instance (cluster mode, ADR 0015): `details.owner` gives its advertised `url` and `grpc` address (null while no instance holds the lease); connect there, or retry after `Retry-After` seconds.',
  ),
} as const satisfies Record<string, ErrorSpec>;

/** A stable error code. */
export type ErrorCode = keyof typeof ERROR_CODES;
