/** The service logger: pino JSON on standard error, so that standard output carries only the start line. */
import pino, { type Logger } from 'pino';

/** Creates the process logger. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'cds' } }, pino.destination({ fd: 2, sync: false }));
}

export type { Logger };
