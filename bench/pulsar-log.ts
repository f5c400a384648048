// Append rate through the Pulsar EventLog adapter, beside Pulsar's own `pulsar-perf produce` on the
// same broker and machine (short runs; figures are "under load" when the machine is shared).
//
//   npx tsx bench/pulsar-log.ts [--seconds=8] [--writers=16] [--batch=50] [--size=300]
//                               [--partitions=4] [--url=http://127.0.0.1:8080 --broker=pulsar://127.0.0.1:6650]
//
// Without --url it starts a standalone broker (scripts/pulsar) and stops it at the end. Prints one
// JSON line with both results.
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import * as hdr from 'hdr-histogram-js';
import { launchPulsar } from '../scripts/pulsar/launcher.ts';
import { PulsarLog } from '../src/adapters/pulsar/index.ts';
import type { AppendRecord } from '../src/log/port.ts';
import { pulsarPerf, type PerfFigures } from './lib/pulsar-perf.ts';

const arg = (name: string, d: string): string =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? d;
const seconds = Number(arg('seconds', '8'));
const writers = Number(arg('writers', '16'));
const batch = Number(arg('batch', '50'));
const size = Number(arg('size', '300'));
const partitions = Number(arg('partitions', '4'));

async function main(): Promise<void> {
  let url = arg('url', '');
  let brokerUrl = arg('broker', '');
  const started = url === '' ? await launchPulsar({ log: (m) => console.error(`[pulsar] ${m}`) }) : undefined;
  if (started !== undefined) {
    url = started.webServiceUrl;
    brokerUrl = started.brokerServiceUrl;
  }
  try {
    const tenant = `bench-${randomUUID().slice(0, 8)}`;
    const log = await PulsarLog.open({ url, tenant, namespace: 'bench', topic: 'decisions', partitions });
    const payload = Buffer.alloc(size, 'x');
    const h = hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 60_000_000,
      numberOfSignificantValueDigits: 3,
    });
    let records = 0;
    let appends = 0;
    let i = 0;
    const load0 = loadavg()[0];
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    await Promise.all(
      Array.from({ length: writers }, async () => {
        while (performance.now() < end) {
          const recs: AppendRecord[] = Array.from({ length: batch }, () => {
            const n = i++;
            return {
              key: `pf-${n % 500}`,
              timestamp: Date.now(),
              headers: { decisionId: `d-${n}`, revision: '1', priority: '5', topics: 'decisions.bench' },
              payload,
            };
          });
          const s = performance.now();
          await log.append(recs);
          h.recordValue(Math.max(1, Math.round((performance.now() - s) * 1000)));
          records += recs.length;
          appends++;
        }
      }),
    );
    const elapsed = (performance.now() - t0) / 1000;
    await log.close();
    const adapter = {
      recordsPerSecond: Math.round(records / elapsed),
      appendsPerSecond: Math.round(appends / elapsed),
      appendLatencyMs: {
        p50: h.getValueAtPercentile(50) / 1000,
        p99: h.getValueAtPercentile(99) / 1000,
        max: h.maxValue / 1000,
      },
      records,
      seconds: Math.round(elapsed * 10) / 10,
    };
    console.error(`[bench] adapter: ${JSON.stringify(adapter)}`);

    // Pulsar's own producer benchmark, same broker, same message size, same partitions, unlimited rate.
    let perf: PerfFigures | { skipped: string } = { skipped: 'no broker service URL' };
    if (brokerUrl !== '') {
      perf = await pulsarPerf(
        { webServiceUrl: url, brokerServiceUrl: brokerUrl },
        { mode: 'produce', topic: `persistent://${tenant}/bench/perf`, partitions, seconds, size },
      );
      console.error(`[bench] pulsar-perf produce: ${JSON.stringify(perf)}`);
    }
    console.log(
      JSON.stringify({
        bench: 'pulsar-log',
        params: { seconds, writers, batch, size, partitions },
        loadAverageAtStart: Math.round(load0! * 10) / 10,
        adapter,
        pulsarPerf: perf,
      }),
    );
  } finally {
    await started?.stop();
  }
}

await main();
