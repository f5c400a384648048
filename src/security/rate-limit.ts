/**
 * Per-principal rate limits: token buckets for requests and for published decisions, refilled
 * continuously, holding one second of burst. Denials carry the wait until enough tokens exist.
 */

/** A token bucket. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly capacity: number = Math.max(1, ratePerSecond),
    now: number = performance.now(),
  ) {
    this.tokens = capacity;
    this.last = now;
  }

  /**
   * Takes `n` tokens if they are there and returns 0; otherwise takes nothing and returns the seconds
   * to wait. A request larger than the capacity waits for a full bucket and then may go.
   */
  take(n: number, now: number = performance.now()): number {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    this.last = now;
    const need = Math.min(n, this.capacity);
    if (this.tokens >= need) {
      this.tokens -= n;
      return 0;
    }
    return (need - this.tokens) / this.ratePerSecond;
  }
}

/** The buckets of every principal. */
export class RateLimiter {
  private readonly buckets = new Map<string, { requests: TokenBucket; decisions: TokenBucket }>();

  constructor(private readonly defaults: { requestsPerSecond: number; decisionsPerSecond: number }) {}

  private bucketsOf(
    principalId: string,
    limits?: { requestsPerSecond?: number; decisionsPerSecond?: number },
  ) {
    let b = this.buckets.get(principalId);
    if (b === undefined) {
      b = {
        requests: new TokenBucket(limits?.requestsPerSecond ?? this.defaults.requestsPerSecond),
        decisions: new TokenBucket(limits?.decisionsPerSecond ?? this.defaults.decisionsPerSecond),
      };
      this.buckets.set(principalId, b);
    }
    return b;
  }

  /** Seconds to wait before this request may go (0: go now, and it is counted). */
  request(principalId: string, limits?: { requestsPerSecond?: number; decisionsPerSecond?: number }): number {
    return this.bucketsOf(principalId, limits).requests.take(1);
  }

  /** Seconds to wait before `n` decisions may be published (0: go now, and they are counted). */
  decisions(
    principalId: string,
    n: number,
    limits?: { requestsPerSecond?: number; decisionsPerSecond?: number },
  ): number {
    return this.bucketsOf(principalId, limits).decisions.take(n);
  }

  /** Forgets a principal's buckets (after its limits changed or it was revoked). */
  forget(principalId: string): void {
    this.buckets.delete(principalId);
  }
}
