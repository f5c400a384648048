/**
 * A job applied on a timer, one run at a time (retention runs, ADR 0017; the ledger's retention, ADR
 * 0011): a tick that finds a run in progress is skipped, and a direct call during a run gets that
 * run's result rather than starting another.
 */
export class Periodic<R> {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<R> | undefined;

  constructor(
    private readonly job: (now: number) => Promise<R>,
    private readonly onError: (e: unknown) => void,
  ) {}

  /** Starts the timer (unref'd: it never holds the process). */
  start(intervalMs: number): void {
    this.#timer = setInterval(() => {
      if (this.#running === undefined) void this.run().catch(this.onError);
    }, intervalMs);
    this.#timer.unref();
  }

  /** One run now, or the one in progress. */
  run(now = Date.now()): Promise<R> {
    if (this.#running !== undefined) return this.#running;
    const p = this.job(now).finally(() => {
      this.#running = undefined;
    });
    this.#running = p;
    return p;
  }

  /** Stops the timer and waits for a run in progress (its failure is the timer's to report). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running?.catch(() => undefined);
  }
}
