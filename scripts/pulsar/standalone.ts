// Runs a real Apache Pulsar standalone broker in the foreground for local development and CI:
//   npx tsx scripts/pulsar/standalone.ts
// Progress goes to stderr; stdout gets one JSON line once the broker answers, e.g.
//   {"event":"ready","webServiceUrl":"http://127.0.0.1:PORT","brokerServiceUrl":"pulsar://127.0.0.1:PORT"}
// SIGINT or SIGTERM stops the JVM and removes its temporary directory.
// With --resolve-only it only resolves the jars (for CI, before the tests) and prints
//   {"event":"resolved","version":"4.0.8","source":"distribution","resolveMs":N}
import { launchPulsar, PulsarUnavailableError, resolvePulsar } from './launcher.ts';

const log = (message: string): void => {
  process.stderr.write(`[pulsar] ${message}\n`);
};

async function main(): Promise<number> {
  if (process.argv.includes('--resolve-only')) {
    const r = await resolvePulsar({ log });
    const line = { event: 'resolved', version: r.version, source: r.source, resolveMs: r.resolveMs };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    return 0;
  }
  const keepData = process.argv.includes('--keep-data');
  const broker = await launchPulsar({ log, keepData });
  log(
    `Pulsar ${broker.version} (${broker.resolve.source}) ready in ${broker.startMs} ms; resolve ${broker.resolve.resolveMs} ms; pid ${broker.pid}; log ${broker.logFile}`,
  );
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', webServiceUrl: broker.webServiceUrl, brokerServiceUrl: broker.brokerServiceUrl })}\n`,
  );
  // The JVM handle is unref'd (tests must be able to exit): hold the event loop open ourselves.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
    void broker.exited.then((how) => resolve(`broker exited (${how})`));
  });
  log(`${signal}: stopping`);
  const exitedByItself = signal.startsWith('broker exited');
  await broker.stop();
  clearInterval(keepAlive);
  process.stdout.write(`${JSON.stringify({ event: 'stopped' })}\n`);
  return exitedByItself ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(err instanceof Error ? err.message : String(err));
    process.exit(err instanceof PulsarUnavailableError ? 2 : 1);
  },
);
