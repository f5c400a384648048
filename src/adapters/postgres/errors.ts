/**
 * Driver errors as CdsErrors: what a caller can act on (retry, fix the configuration, report a
 * conflict) rather than `pg`'s mixture of socket errors and SQLSTATEs.
 */
import { CdsError } from '../../errors/index.ts';

/** Socket-level error codes that mean the server could not be reached or the link broke. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

interface DriverError {
  readonly code?: string;
  readonly message?: string;
  readonly constraint?: string;
}

function asDriverError(e: unknown): DriverError {
  return typeof e === 'object' && e !== null ? (e as DriverError) : { message: String(e) };
}

/** Whether a driver error means the server is unreachable or the connection broke (worth a retry). */
export function isConnectionError(e: unknown): boolean {
  const { code, message = '' } = asDriverError(e);
  if (code !== undefined && NETWORK_CODES.has(code)) return true;
  // Class 08: connection exception; 57P01-03: shutdown or not yet accepting; 53300: too many connections.
  if (code !== undefined && (code.startsWith('08') || /^57P0[123]$/.test(code) || code === '53300'))
    return true;
  return /Connection terminated|timeout expired|Client has encountered a connection error/i.test(message);
}

/** Maps an error of a store operation: `what` says what was being done, for the message. */
export function mapPgError(e: unknown, what: string): CdsError {
  if (e instanceof CdsError) return e;
  const d = asDriverError(e);
  if (isConnectionError(e))
    return new CdsError('STORAGE_UNAVAILABLE', `PostgreSQL is unavailable (${what}): ${d.message}`, {
      cause: e,
    });
  switch (d.code) {
    case '23505':
      return new CdsError('ALREADY_EXISTS', `${what}: already exists (${d.constraint ?? 'unique key'})`, {
        cause: e,
      });
    case '40001': // serialization_failure
    case '40P01': // deadlock_detected
    case '55P03': // lock_not_available
    case '57014': // query_canceled (statement timeout)
      return new CdsError('STORAGE_UNAVAILABLE', `${what} did not complete, retry: ${d.message}`, {
        cause: e,
      });
    default:
      return new CdsError('INTERNAL', `${what} failed in PostgreSQL: ${d.code ?? ''} ${d.message}`.trim(), {
        cause: e,
      });
  }
}

/**
 * Maps an error of the first connection at open, naming which of the usual causes it was: an
 * unreachable server (retriable), or credentials or a database that the configuration got wrong.
 */
export function mapConnectError(e: unknown, where: string): CdsError {
  const d = asDriverError(e);
  switch (d.code) {
    case '28P01':
    case '28000':
      return new CdsError(
        'CONFIG_INVALID',
        `PostgreSQL at ${where} refused the credentials (wrong user or password): ${d.message}`,
        { cause: e, details: { sqlstate: d.code } },
      );
    case '3D000':
      return new CdsError('CONFIG_INVALID', `PostgreSQL at ${where}: ${d.message}`, {
        cause: e,
        details: { sqlstate: d.code },
      });
  }
  if (isConnectionError(e))
    return new CdsError(
      'STORAGE_UNAVAILABLE',
      `cannot reach PostgreSQL at ${where}: ${d.code ?? ''} ${d.message ?? ''}`.replace(/\s+/g, ' ').trim(),
      { cause: e },
    );
  return mapPgError(e, `connecting to PostgreSQL at ${where}`);
}
