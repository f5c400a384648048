/** Waiting for a condition in integration tests. */
import { setTimeout as sleep } from 'node:timers/promises';

/** Options of {@link within}. */
export interface WithinOptions {
  /** Milliseconds between checks. Default 25. */
  readonly pollMs?: number;
  /** A check that throws counts as not yet (a server in an outage answers with errors). */
  readonly ignoreErrors?: boolean;
}

/**
 * Waits until `cond` holds, checking every `pollMs`; resolves the elapsed milliseconds, or throws
 * naming `what` after `ms`.
 */
export async function within(
  ms: number,
  what: string,
  cond: () => Promise<boolean> | boolean,
  opts: WithinOptions = {},
): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    let ok: boolean;
    try {
      ok = await cond();
    } catch (e) {
      if (opts.ignoreErrors !== true) throw e;
      ok = false;
    }
    if (ok) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(opts.pollMs ?? 25);
  }
}
