/**
 * One clock for every process of a run: CLOCK_MONOTONIC in milliseconds, which on Linux is the same
 * clock in all processes of a machine (process.hrtime reads it). performance.now() counts from each
 * process's own start, so it is shifted once onto the shared clock. The generator's intended send
 * times and the subscribers' receive times are both in this clock, so a latency is a subtraction.
 */
/**
 * performance.now() minus CLOCK_MONOTONIC: read between two hrtime readings, the closest pair of
 * several (a first call can be slow, and a process just started is often descheduled mid-read).
 */
function measureOffsetMs(): number {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 100; i++) {
    const a = process.hrtime.bigint();
    const p = performance.now();
    const b = process.hrtime.bigint();
    const gap = b - a;
    if (gap < best) {
      best = Number(gap);
      offset = Number(a + b) / 2e6 - p;
    }
    if (best < 2_000) break; // within 2 µs
  }
  return offset;
}

const offsetMs = measureOffsetMs();

/** Now, in shared monotonic milliseconds (sub-microsecond resolution). */
export function monoMs(): number {
  return performance.now() + offsetMs;
}

/** Converts this process's performance.now() value to shared monotonic milliseconds. */
export function toMono(perfNow: number): number {
  return perfNow + offsetMs;
}

/** Converts shared monotonic milliseconds to this process's performance.now() scale. */
export function fromMono(mono: number): number {
  return mono - offsetMs;
}
