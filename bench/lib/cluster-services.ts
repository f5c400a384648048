/**
 * The services of a cluster-mode run (ADR 0015, 0016): a Pulsar standalone broker, a PostgreSQL
 * server and `cds serve` processes on both, each followed by the run's CPU meter. Running servers
 * are used instead when PULSAR_TEST_WEB_SERVICE_URL/PULSAR_TEST_BROKER_SERVICE_URL or
 * CDS_TEST_POSTGRES_URL are set (their CPU is then not measured).
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { freePort, launchPulsar, type PulsarBroker } from '../../scripts/pulsar/launcher.ts';
import { startPostgres, type TestPostgres } from '../../test/helpers/postgres.ts';
import { startServer, type ServerHandle } from '../../test/helpers/server.ts';
import type { ProcessMeter } from './proc.ts';
import type { PulsarUrls } from './pulsar-perf.ts';
import type { ServiceAddress } from './workload.ts';

/** Options of {@link startClusterServices}. */
export interface ClusterOptions {
  readonly instances: number;
  readonly partitions: number;
  /** A tenant of its own for the run (created by the first instance). */
  readonly tenant: string;
  /** Extra environment of every instance. */
  readonly env: Readonly<Record<string, string>>;
  readonly adminKey: string;
  readonly meter: ProcessMeter;
  readonly log: (message: string) => void;
}

/** Running cluster-mode services. */
export interface ClusterServices {
  readonly pulsar: PulsarUrls;
  /** The broker's JVM, when this started it. */
  readonly brokerPid: number | undefined;
  readonly postgresUrl: string;
  /** The admin key of every instance. */
  readonly adminKey: string;
  /** The instances, in start order (`cds-1`, `cds-2`, ... in the meter). */
  readonly instances: readonly ServiceAddress[];
  /** The tenant and namespace of the log. */
  readonly tenant: string;
  readonly namespace: string;
  /** Milliseconds each part took to start. */
  readonly startMs: Readonly<Record<string, number>>;
  /** Stops the instances (SIGTERM), reporting a bad exit with its log's tail; idempotent. */
  stopInstances(): Promise<void>;
  /** Stops everything this started (instances first); idempotent, never rejects. */
  stop(): Promise<void>;
}

/** The namespace the instances' log lives in (the service's default, `cds`). */
const NAMESPACE = 'cds';

/** The postmaster's pid: the parent of a backend (PostgreSQL forks one per connection). */
async function postmasterPid(url: string): Promise<number | undefined> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const stat = readFileSync(`/proc/${rows[0]!.pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined; // another machine's server (CDS_TEST_POSTGRES_URL)
  } finally {
    await c.end();
  }
}

/**
 * Starts the broker, PostgreSQL and `opts.instances` instances in cluster mode on them (one after
 * the other: the first creates the tenant, namespace, topic and schema). On a failure, what was
 * started is stopped before the error is thrown.
 */
export async function startClusterServices(opts: ClusterOptions): Promise<ClusterServices> {
  const started: { broker?: PulsarBroker; db?: TestPostgres; servers: ServerHandle[] } = { servers: [] };
  const startMs: Record<string, number> = {};
  let stopping: Promise<void> | undefined;
  const stopInstances = async () => {
    for (const s of started.servers.splice(0)) {
      const exit = await s.stop('SIGTERM');
      if (exit.code !== 0) opts.log(`${s.url} exited with ${JSON.stringify(exit)}\n${s.stderrTail()}`);
      s.cleanup();
    }
  };
  const stop = () =>
    (stopping ??= (async () => {
      await stopInstances().catch((e: unknown) => opts.log(`stopping instances: ${String(e)}`));
      await started.db?.stop().catch((e: unknown) => opts.log(`stopping PostgreSQL: ${String(e)}`));
      await started.broker?.stop().catch((e: unknown) => opts.log(`stopping Pulsar: ${String(e)}`));
    })());
  try {
    let t = performance.now();
    const web = process.env.PULSAR_TEST_WEB_SERVICE_URL;
    const bin = process.env.PULSAR_TEST_BROKER_SERVICE_URL;
    let pulsar: PulsarUrls;
    if (web && bin) pulsar = { webServiceUrl: web, brokerServiceUrl: bin };
    else {
      started.broker = await launchPulsar({ log: (m) => opts.log(`[pulsar] ${m}`) });
      pulsar = started.broker;
      opts.meter.track('pulsar', started.broker.pid);
    }
    startMs['pulsar'] = Math.round(performance.now() - t);
    t = performance.now();
    const db = await startPostgres();
    if ('skipped' in db) throw new Error(`PostgreSQL unavailable: ${db.skipped}`);
    started.db = db;
    const pm = await postmasterPid(db.url);
    if (pm !== undefined) opts.meter.track('postgres', pm, { tree: true });
    startMs['postgres'] = Math.round(performance.now() - t);

    const instances: ServiceAddress[] = [];
    for (let i = 1; i <= opts.instances; i++) {
      t = performance.now();
      const grpcPort = await freePort();
      const s = await startServer({
        env: {
          ...opts.env,
          CDS_LOG: 'pulsar',
          CDS_PULSAR_URL: pulsar.webServiceUrl,
          CDS_PULSAR_TENANT: opts.tenant,
          CDS_PULSAR_NAMESPACE: NAMESPACE,
          CDS_PULSAR_PARTITIONS: String(opts.partitions),
          CDS_STATE: 'postgres',
          CDS_POSTGRES_URL: db.url,
          CDS_GRPC_PORT: String(grpcPort),
        },
        adminKey: opts.adminKey,
        timeoutMs: 120_000,
      });
      started.servers.push(s);
      opts.meter.track(`cds-${i}`, s.pid);
      instances.push({ url: s.url, grpcAddress: `127.0.0.1:${grpcPort}` });
      startMs[`cds-${i}`] = Math.round(performance.now() - t);
    }
    return {
      pulsar,
      brokerPid: started.broker?.pid,
      postgresUrl: db.url,
      adminKey: opts.adminKey,
      instances,
      tenant: opts.tenant,
      namespace: NAMESPACE,
      startMs,
      stopInstances,
      stop,
    };
  } catch (e) {
    for (const s of started.servers) opts.log(`--- ${s.url} stderr tail ---\n${s.stderrTail()}`);
    await stop();
    throw e;
  }
}
