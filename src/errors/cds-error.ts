import { ERROR_CODES, type ErrorCode, type ErrorSpec } from './codes.ts';

/** One failing field of an input: where (a JSON pointer-like path such as `/items/3/instrument/symbol`), and why. */
export interface FieldError {
  /** Path of the failing field, `/`-separated (empty string for the whole input). */
  readonly path: string;
  /** A stable, machine-readable reason (for example `required`, `type`, `pattern`, `enum`, `unknown_field`). */
  readonly code: string;
  /** Human-readable explanation. */
  readonly message: string;
}

/** Every error the service raises on purpose: a stable code, a message, optional details and cause. */
export class CdsError extends Error {
  /** The registry code. */
  readonly code: ErrorCode;
  /** Extra machine-readable data (field errors, positions, limits). */
  readonly details: Record<string, unknown> | undefined;
  /** Seconds a client should wait before retrying, where that is known. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown; retryAfterSeconds?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CdsError';
    this.code = code;
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** The registry entry of this error's code. */
  get spec(): ErrorSpec {
    return ERROR_CODES[this.code];
  }

  /** Whether retrying the same request later may succeed. */
  get retriable(): boolean {
    return ERROR_CODES[this.code].retriable;
  }

  /** The JSON body every transport answers with. */
  toJSON(): {
    error: { code: ErrorCode; message: string; retriable: boolean; details?: Record<string, unknown> };
  } {
    return {
      error: {
        code: this.code,
        message: this.message,
        retriable: this.retriable,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

/** A validation failure listing every failing field. */
export function validationError(
  message: string,
  errors: readonly FieldError[],
  extra: Record<string, unknown> = {},
) {
  return new CdsError('VALIDATION_FAILED', message, { details: { errors, ...extra } });
}

/** Whether a value is a CdsError with the given code. */
export function isCdsError(e: unknown, code?: ErrorCode): e is CdsError {
  return e instanceof CdsError && (code === undefined || e.code === code);
}
