/**
 * Cluster mode (ADR 0015, 0016; issue 8): the fanout profile through `--instances` `cds serve`
 * processes on a Pulsar standalone broker and a PostgreSQL server, all on this machine. Generator i
 * publishes to instance i mod n; subscriber process p connects to instance p mod n and follows
 * NOT_OWNER to the instance holding its subscription's lease. The CPU of every process, the broker
 * and PostgreSQL (with its backends) included, is measured over the same period.
 *
 * Then, on the same broker, tenant and namespace, Pulsar's own `pulsar-perf` on a partitioned topic
 * of `--partitions`: `consume` and `produce` at the offered rate with the mean size of the messages
 * the service wrote, then `produce` as fast as it can.
 *
 * Defaults: 500 decisions/s to 20 subscribers (about 620 deliveries/s) for 20 s after a 10 s
 * warm-up. On this project's 2 cores, shared by the broker (a JVM), PostgreSQL, two instances, the
 * generators and the subscribers (and other engineers' work), 2,000/s was not carried: the service's
 * acknowledgements levelled off at about 400/s with the broker using about 2 ms of CPU per decision
 * (the adapter's WebSocket path, ADR 0016), and the first seconds after the instances start are
 * slower still (leases taken, producers and readers opened), hence the longer warm-up.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startClusterServices, type ClusterServices } from '../lib/cluster-services.ts';
import { runDelivery } from '../lib/delivery.ts';
import { cpuTimes } from '../lib/proc.ts';
import { pulsarPerf, type PerfFigures, type PulsarUrls } from '../lib/pulsar-perf.ts';
import { COMMON_DEFAULTS, type RunContext, type Workload, type WorkloadOutcome } from '../lib/workload.ts';

/** Messages and bytes the broker took in on a topic (all partitions), from its admin REST API. */
async function topicIn(pulsar: PulsarUrls, topic: string): Promise<{ messages: number; bytes: number }> {
  const res = await fetch(`${pulsar.webServiceUrl}/admin/v2/${topic.replace('://', '/')}/partitioned-stats`);
  if (!res.ok) throw new Error(`partitioned-stats of ${topic}: ${res.status} ${await res.text()}`);
  const s = (await res.json()) as { msgInCounter?: number; bytesInCounter?: number };
  return { messages: s.msgInCounter ?? 0, bytes: s.bytesInCounter ?? 0 };
}

/** Creates a partitioned topic through the admin REST API. */
async function createTopic(pulsar: PulsarUrls, topic: string, partitions: number): Promise<void> {
  const res = await fetch(`${pulsar.webServiceUrl}/admin/v2/${topic.replace('://', '/')}/partitions`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: String(partitions),
  });
  if (!res.ok) throw new Error(`creating ${topic}: ${res.status} ${await res.text()}`);
}

/** Waits until `subscription` exists on every partition of `topic` (pulsar-perf consume is up). */
async function subscribed(pulsar: PulsarUrls, topic: string, subscription: string, timeoutMs: number) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const res = await fetch(`${pulsar.webServiceUrl}/admin/v2/${topic.replace('://', '/')}/subscriptions`);
    if (res.ok && ((await res.json()) as string[]).includes(subscription)) return true;
    await sleep(250);
  }
  return false;
}

/** CPU seconds the broker used while `fn` ran (null when its process is not ours to read). */
async function withBrokerCpu<T>(pid: number | undefined, fn: () => Promise<T>) {
  const a = pid === undefined ? undefined : cpuTimes(pid);
  const result = await fn();
  const b = pid === undefined ? undefined : cpuTimes(pid);
  const brokerCpuS =
    a === undefined || b === undefined
      ? null
      : Math.round((b.userS + b.systemS - a.userS - a.systemS) * 1000) / 1000;
  return { result, brokerCpuS };
}

/** pulsar-perf on the services' broker, tenant and namespace, after the service's run. */
async function runPulsarPerf(ctx: RunContext, services: ClusterServices, messageBytes: number) {
  const o = ctx.opts;
  const base = `persistent://${services.tenant}/${services.namespace}`;
  const perTopic = (name: string) => `${base}/${name}`;
  const size = Math.max(1, Math.round(messageBytes));
  const messages = Math.round(o.rate * o.durationS);
  // The broker's own background work, to set against the per-message figures at low rates.
  const idleSeconds = 5;
  const idle = await withBrokerCpu(services.brokerPid, () => sleep(idleSeconds * 1000));
  const topic = perTopic('perf');
  await createTopic(services.pulsar, topic, o.partitions);
  const consume = pulsarPerf(services.pulsar, {
    mode: 'consume',
    topic,
    subscription: 'perf',
    seconds: o.durationS + 90,
    messages,
  });
  const consumerUp = await subscribed(services.pulsar, topic, 'perf', 60_000);
  const atRate = await withBrokerCpu(services.brokerPid, () =>
    pulsarPerf(services.pulsar, {
      mode: 'produce',
      topic,
      seconds: o.durationS,
      rate: o.rate,
      size,
      messages,
    }),
  );
  const consumed: PerfFigures = await consume;
  const maxTopic = perTopic('perf-max');
  await createTopic(services.pulsar, maxTopic, o.partitions);
  const maxSeconds = Math.min(o.durationS, 10);
  const unlimited = await withBrokerCpu(services.brokerPid, () =>
    pulsarPerf(services.pulsar, { mode: 'produce', topic: maxTopic, seconds: maxSeconds, size }),
  );
  const perMessage = (cpuS: number | null, f: PerfFigures) =>
    cpuS === null || 'failed' in f || f.messages === 0 ? null : Math.round((cpuS / f.messages) * 1e7) / 10;
  return {
    tool: 'pulsar-perf (org.apache.pulsar.testclient.PulsarPerfTestTool) from the broker distribution',
    namespace: `${services.tenant}/${services.namespace}`,
    partitions: o.partitions,
    messageBytes: size,
    messageBytesFrom: 'bytesInCounter / msgInCounter of the service topic during the run',
    batching: 'up to 1 ms or 1,000 messages per batch (-b 1 -bm 1000)',
    brokerIdle: {
      seconds: idleSeconds,
      cpuS: idle.brokerCpuS,
      note: 'the broker with no client, between the service run and pulsar-perf',
    },
    atOfferedRate: {
      topic,
      rate: o.rate,
      messages,
      produce: atRate.result,
      consume: consumerUp
        ? consumed
        : { failed: `consumer not subscribed within 60 s; ${JSON.stringify(consumed)}` },
      brokerCpuS: atRate.brokerCpuS,
      brokerCpuUsPerMessage: perMessage(atRate.brokerCpuS, atRate.result),
    },
    unlimited: {
      topic: maxTopic,
      seconds: maxSeconds,
      produce: unlimited.result,
      brokerCpuS: unlimited.brokerCpuS,
      brokerCpuUsPerMessage: perMessage(unlimited.brokerCpuS, unlimited.result),
    },
  };
}

/** Starts the services, runs the fanout profile through them, then pulsar-perf; stops everything. */
async function runCluster(ctx: RunContext): Promise<WorkloadOutcome> {
  const o = ctx.opts;
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const services = await startClusterServices({
    instances: o.instances,
    partitions: o.partitions,
    tenant: `bench-${ctx.runId}`,
    env: ctx.serviceEnv,
    adminKey: `cds_bench-${randomBytes(16).toString('hex')}`,
    meter: ctx.meter,
    log,
  });
  try {
    const first = services.instances[0]!;
    const generators = Math.max(o.generators, o.instances);
    const outcome = await runDelivery({
      ...ctx,
      // At least one generator per instance, so that every instance takes publishes.
      opts: { ...o, generators },
      url: first.url,
      grpcAddress: first.grpcAddress,
      key: services.adminKey,
      instances: services.instances,
    });
    const logTopic = `persistent://${services.tenant}/${services.namespace}/decisions`;
    const written = await topicIn(services.pulsar, logTopic);
    ctx.meter.sample();
    await services.stopInstances();
    log(`[cluster] service run done; pulsar-perf on ${services.tenant}/${services.namespace}`);
    const pulsarPerfResult = await runPulsarPerf(
      ctx,
      services,
      written.bytes / Math.max(1, written.messages),
    );
    return {
      ...outcome,
      pulsarPerf: pulsarPerfResult,
      details: {
        ...outcome.details,
        cluster: {
          instances: services.instances,
          generators,
          pulsar: {
            webServiceUrl: services.pulsar.webServiceUrl,
            brokerServiceUrl: services.pulsar.brokerServiceUrl,
          },
          startMs: services.startMs,
          logTopic,
          logTopicIn: written,
        },
      },
    };
  } finally {
    await services.stop();
  }
}

/** The cluster workload. */
export const cluster: Workload = {
  name: 'cluster',
  description:
    'the fanout profile on --instances cds serve in cluster mode (Pulsar, PostgreSQL), then pulsar-perf',
  startsServices: true,
  defaults: {
    ...COMMON_DEFAULTS,
    rate: 500,
    durationS: 20,
    warmupS: 10,
    batch: 50,
    connections: 4,
    generators: 2,
    subscribers: 20,
    subscriberProcesses: 2,
    instances: 2,
    partitions: 4,
  },
  run: runCluster,
};
