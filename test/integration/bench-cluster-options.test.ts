/**
 * The cluster workload's parts that need no broker (its run starts Pulsar and PostgreSQL, so it is
 * not in the harness smoke test): its options and defaults, the reading of pulsar-perf's summary,
 * and the CPU of a process tree (PostgreSQL's backends are children of the postmaster).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { parseArgs, USAGE } from '../../bench/lib/args.ts';
import { cpuTimes, ProcessMeter, treeCpuTimes } from '../../bench/lib/proc.ts';
import { parsePerfOutput } from '../../bench/lib/pulsar-perf.ts';
import { cluster } from '../../bench/workloads/cluster.ts';

test('cluster options: --instances and --partitions parsed, --url refused, defaults for 2 cores', () => {
  const a = parseArgs(['cluster', '--instances', '3', '--partitions=2', '--rate', '700', '--duration', '5']);
  assert.equal(a.workload, 'cluster');
  assert.deepEqual(a.overrides, { instances: 3, partitions: 2, rate: 700, durationS: 5 });
  assert.throws(() => parseArgs(['cluster', '--instances', '0']), /--instances needs a positive number/);
  assert.throws(
    () => parseArgs(['cluster', '--url', 'http://x', '--key', 'k']),
    /cluster starts its own instances/,
  );
  assert.match(USAGE, /^ {2}cluster /m);
  assert.match(USAGE, /--instances N/);
  assert.equal(cluster.startsServices, true);
  assert.equal(cluster.defaults.instances, 2);
  assert.equal(cluster.defaults.generators, cluster.defaults.instances, 'one generator per instance');
  assert.ok(cluster.defaults.rate <= 2_000 && cluster.defaults.subscribers <= 20, 'a load 2 cores carry');
});

test('pulsar-perf summaries: produce and consume figures, or the output when there is none', () => {
  const prefix = '12:00:01.000 [main] INFO  org.apache.pulsar.testclient.';
  const produce = parsePerfOutput(
    `${prefix}PerformanceProducer - Aggregated throughput stats --- 40007 records sent --- 1,325.1 msg/s --- 8.1 Mbit/s\n` +
      `${prefix}PerformanceProducer - Aggregated latency stats --- Latency: mean:   3.456 ms - med:   2.100 - ` +
      '95pct:   7.000 - 99pct:  15.000 - 99.9pct:  40.100 - 99.99pct:  50.000 - 99.999pct:  60.000 - Max:  61.000\n',
    20,
  );
  assert.deepEqual(produce, {
    messages: 40007,
    messagesPerSecond: 1325,
    messagesPerTestSecond: 2000,
    latencyMs: { mean: 3.456, p50: 2.1, p95: 7, p99: 15, p999: 40.1, max: 61 },
  });
  const consume = parsePerfOutput(
    `${prefix}PerformanceConsumer - Aggregated throughput stats --- 40000 records received --- 1507.3 msg/s --- ` +
      '9.1 Mbit/s --- AckRate: 1507.3  msg/s --- ack failed 0 msg\n',
    null,
  );
  assert.deepEqual(consume, {
    messages: 40000,
    messagesPerSecond: 1507,
    messagesPerTestSecond: null,
    latencyMs: null,
  });
  assert.deepEqual(parsePerfOutput('Exception in thread "main"', 5), {
    failed: 'Exception in thread "main"',
  });
});

test("a process tree's CPU includes its live and its exited children's", async () => {
  // Each child uses 0.4 s of CPU; the first exits (the shell's cutime), the second stays.
  const burn = 'while (process.cpuUsage().user < 400000);';
  const sh = spawn('sh', ['-c', `node -e '${burn}'; node -e '${burn} setTimeout(() => {}, 20000)'`], {
    stdio: 'ignore',
    detached: true,
  });
  try {
    const total = (c: { userS: number; systemS: number } | undefined) => (c ? c.userS + c.systemS : 0);
    const t0 = Date.now();
    while (total(treeCpuTimes(sh.pid!)) < 0.8) {
      assert.ok(Date.now() - t0 < 20_000, `tree CPU ${total(treeCpuTimes(sh.pid!))} s after 20 s`);
      await sleep(100);
    }
    assert.ok(total(cpuTimes(sh.pid!)) < 0.1, 'the shell itself hardly ran');
  } finally {
    process.kill(-sh.pid!, 'SIGKILL');
  }
});

test('a process that exits before the measured period ends keeps its CPU (a generator done first)', async () => {
  // Like a generator: works, says it is done (the harness samples then), exits.
  const child = spawn(
    process.execPath,
    ['-e', 'while (process.cpuUsage().user < 300000); console.log("done"); setTimeout(() => {}, 20000);'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const meter = new ProcessMeter();
  try {
    meter.track('early', child.pid!);
    meter.start();
    await new Promise((res) => child.stdout.once('data', res));
    meter.sample();
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    meter.end();
    const cpu = meter.cpu()['early'];
    assert.ok(cpu !== null && cpu !== undefined && cpu.totalS >= 0.2, JSON.stringify(cpu));
  } finally {
    meter.close();
    child.kill('SIGKILL');
  }
});
