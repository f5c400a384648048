// The EventLog contract suite on PulsarLog against a real Pulsar standalone broker (one per file),
// each case on a topic of its own.
import { randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import { PulsarLog } from '../../src/adapters/pulsar/index.ts';
import { eventLogContract } from '../../src/log/contract.ts';
import { isSkipped, startPulsar } from '../helpers/pulsar.ts';
import type { SkippedPulsar, TestPulsar } from '../helpers/pulsar.ts';

let pulsar: TestPulsar | SkippedPulsar = { skipped: 'not started' };
const tenant = `cds-log-${randomUUID().slice(0, 8)}`;
let n = 0;

before(async () => {
  pulsar = await startPulsar();
  if (!isSkipped(pulsar))
    console.log(`[pulsar] broker start: ${pulsar.startMs} ms at ${pulsar.webServiceUrl}`);
});
after(async () => {
  if (!isSkipped(pulsar)) await pulsar.stop();
});

eventLogContract('PulsarLog', async () => {
  if (isSkipped(pulsar)) throw new Error(pulsar.skipped);
  const url = pulsar.webServiceUrl;
  const opts = { url, tenant, namespace: 'contract', topic: `log-${++n}`, partitions: 3 };
  const log = await PulsarLog.open(opts);
  return {
    log,
    reopen: () => PulsarLog.open(opts),
    cleanup: async () => {},
  };
});
