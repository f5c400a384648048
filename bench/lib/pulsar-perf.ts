/**
 * Pulsar's own benchmark tool, `pulsar-perf` (pulsar-testclient's PulsarPerfTestTool, run from the
 * broker's jars by test/helpers/pulsar.ts), and the figures read from its summary lines. Used beside
 * the service's own measurements (bench/pulsar-log.ts, the cluster workload) on the same broker.
 */
import { runPulsarTool } from '../../test/helpers/pulsar.ts';

/** A broker's web service (admin REST) and binary protocol URLs. */
export interface PulsarUrls {
  readonly webServiceUrl: string;
  readonly brokerServiceUrl: string;
}

/** What one `pulsar-perf produce` or `consume` reported (its "Aggregated" lines), or why not. */
export type PerfFigures =
  | {
      readonly messages: number;
      /** pulsar-perf's own figure: it divides by its whole run, connection set-up included. */
      readonly messagesPerSecond: number;
      /** produce: messages / the `-time` given (null for consume, which waits for the producer). */
      readonly messagesPerTestSecond: number | null;
      /** produce: send to broker acknowledgement; consume: publish time to receipt (end to end). */
      readonly latencyMs: Readonly<Record<'mean' | 'p50' | 'p95' | 'p99' | 'p999' | 'max', number>> | null;
    }
  | { readonly failed: string };

/** Reads the summary `pulsar-perf produce` or `consume` prints at its end. */
export function parsePerfOutput(text: string, seconds: number | null): PerfFigures {
  const m = /Aggregated throughput stats --- (\d+) records (?:sent|received) --- ([\d.,]+) msg\/s/.exec(text);
  if (m === null) return { failed: text.slice(-1500) };
  const num = (s: string | undefined) => Number((s ?? 'NaN').replace(/,/g, ''));
  // "Aggregated latency stats --- Latency: mean: 2.1 ms - med: 1.9 - 95pct: 3.0 - ... - Max: 40.2"
  const line = /Aggregated latency stats --- Latency: (.*)/.exec(text)?.[1];
  const fields = new Map(
    (line ?? '').split(' - ').map((part) => {
      const [label, value] = part.split(/: +/);
      return [label?.trim(), num(value?.replace(/ ms$/, '').trim())] as const;
    }),
  );
  const field = (label: string) => fields.get(label) ?? NaN;
  return {
    messages: num(m[1]),
    messagesPerSecond: Math.round(num(m[2])),
    messagesPerTestSecond: seconds === null ? null : Math.round(num(m[1]) / seconds),
    latencyMs:
      line === undefined
        ? null
        : {
            mean: field('mean'),
            p50: field('med'),
            p95: field('95pct'),
            p99: field('99pct'),
            p999: field('99.9pct'),
            max: field('Max'),
          },
  };
}

/** Options of {@link pulsarPerf}. */
export interface PerfRun {
  readonly mode: 'produce' | 'consume';
  /** `persistent://tenant/namespace/name`. */
  readonly topic: string;
  /** produce: create the topic with this many partitions first (absent: it exists). */
  readonly partitions?: number;
  /** The longest run, seconds. */
  readonly seconds: number;
  /** Stop after this many messages (absent: at the end of `seconds`). */
  readonly messages?: number;
  /** produce: message bytes and messages/s (0: as fast as it can). */
  readonly size?: number;
  readonly rate?: number;
  /** consume: the subscription's name. */
  readonly subscription?: string;
}

/**
 * Runs `pulsar-perf produce` (batching up to 1 ms, like the adapter's producers) or `consume` for
 * `seconds` against `broker`; resolves with its figures. Never rejects for a failed run (`failed`).
 */
export async function pulsarPerf(broker: PulsarUrls, run: PerfRun): Promise<PerfFigures> {
  const common = [
    '-u',
    broker.brokerServiceUrl,
    '-time',
    String(run.seconds),
    ...(run.messages === undefined ? [] : ['-m', String(run.messages)]),
  ];
  const args =
    run.mode === 'produce'
      ? [
          'produce',
          ...common,
          '-s',
          String(run.size ?? 300),
          '-r',
          String(run.rate === undefined || run.rate === 0 ? 1_000_000 : run.rate),
          ...(run.partitions === undefined ? [] : ['-np', String(run.partitions)]),
          '-b',
          '1',
          '-bm',
          '1000',
          run.topic,
        ]
      : ['consume', ...common, '-ss', run.subscription ?? 'perf', run.topic];
  try {
    const out = await runPulsarTool(broker, 'org.apache.pulsar.testclient.PulsarPerfTestTool', args, {
      timeoutMs: (run.seconds + 120) * 1000,
      memory: ['-Xms128m', '-Xmx512m'],
    });
    return parsePerfOutput(out.stdout + out.stderr + out.log, run.mode === 'produce' ? run.seconds : null);
  } catch (e) {
    return { failed: (e as Error).message };
  }
}
