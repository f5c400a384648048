/**
 * The prevPosition chain across a crash (DESIGN 5; ADR 0009, ADR 0012 "Open"): a runtime delivers,
 * its cursor is committed (snapshot() through a JSON round trip, as the store keeps it), more happens
 * that the commit does not hold, the process dies, and a new runtime starts from the committed
 * cursor. The deliveries of both runs go to one client-side GapDetector, as a reconnecting client's do.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GapDetector, type Delivery, type Gap } from '../client/index.ts';
import type { Decision } from '../domain/decision.ts';
import { toRecord } from '../ingest/record.ts';
import type { EventLog, LogRecord } from '../log/index.ts';
import { sampleDecision } from '../routing/test-fixtures.ts';
import type { CursorSnapshot } from '../state/subscriptions-port.ts';
import { SPEC_DEFAULTS, type SubscriptionSpec } from '../subscriptions/spec.ts';
import { decodeRecord } from './decoded.ts';
import { SubscriptionRuntime } from './runtime.ts';
import type { ConsumerHandle } from './types.ts';

/** One partition in memory: enough of the EventLog port for a runtime. */
class MemoryLog implements EventLog {
  readonly epoch = 'e-test';
  readonly partitions = 1;
  readonly records: LogRecord[] = [];
  partitionOf(): number {
    return 0;
  }
  append(): never {
    throw new Error('not used');
  }
  add(d: Decision): LogRecord {
    const r = {
      ...toRecord(d, { topics: [`decisions.${d.portfolioId}`], key: d.portfolioId, priority: 0 }, 0),
      partition: 0,
      offset: this.records.length,
    };
    this.records.push(r);
    return r;
  }
  async read(_p: number, from: number, n: number): Promise<LogRecord[]> {
    return this.records.slice(from, from + n);
  }
  async readOne(_p: number, offset: number): Promise<LogRecord | undefined> {
    return this.records[offset];
  }
  async waitFor(): Promise<void> {}
  async trim(): Promise<number> {
    return 0;
  }
  trimPoint(): number {
    return 0;
  }
  extents() {
    return [{ partition: 0, first: 0, next: this.records.length }];
  }
  storedBytes(): number {
    return 0;
  }
  async close(): Promise<void> {}
}

const spec: SubscriptionSpec = {
  ...SPEC_DEFAULTS,
  name: 'chain',
  topics: ['decisions.>'],
  start: { kind: 'earliest' },
  ackTimeoutMs: 600_000,
  maxInFlight: 10_000,
  state: 'active',
};

/** A new subscription reading from the log's start. */
const START: CursorSnapshot[] = [{ partition: 0, next: 0, pending: [], anchors: [] }];

const settle = () => new Promise((r) => setTimeout(r, 20));

let seq = 0;
const trade = (key: string): Decision => sampleDecision({ decisionId: `d${++seq}`, portfolioId: key });

/** A run of the service: a runtime from a cursor, one consumer whose frames are recorded. */
async function run(log: MemoryLog, cursors: readonly CursorSnapshot[], credits: number) {
  const rt = new SubscriptionRuntime(
    spec,
    { log, epoch: log.epoch, tailNext: () => log.records.length, onError: (e) => assert.fail(String(e)) },
    cursors,
  );
  await rt.start();
  const got: Delivery[] = [];
  const c: ConsumerHandle = rt.attach(
    { send: (ds) => got.push(...ds.map((t) => JSON.parse(t) as Delivery)), close: () => undefined },
    credits,
  );
  await settle();
  return {
    rt,
    c,
    got,
    /** Records appended while this run is live, handed over as the tail reader would. */
    tail(recs: readonly LogRecord[]) {
      const from = recs[0]?.offset ?? 0;
      rt.onTail(
        0,
        from,
        from + recs.length,
        recs.map((r) => decodeRecord(r)!),
      );
    },
    /** The cursor as a commit stores it. */
    commit: (): CursorSnapshot[] => JSON.parse(JSON.stringify(rt.snapshot())) as CursorSnapshot[],
  };
}

/** What the client sees of both runs: the gaps its detector reports. */
function gapsOf(...runs: (readonly Delivery[])[]): Gap[] {
  const g = new GapDetector();
  const gaps: Gap[] = [];
  for (const ds of runs)
    for (const d of ds) {
      const x = g.check(d);
      if (x !== undefined) gaps.push(x);
    }
  return gaps;
}

test('after a crash, a halt expedited ahead of 300 redeliveries of its key is the prevPosition of the next first delivery, and no gap is reported', async () => {
  const log = new MemoryLog();
  const K = 'pf-busy';
  for (let i = 0; i < 300; i++) log.add(trade(K));
  const a = await run(log, START, 1000);
  assert.equal(a.got.length, 300);
  a.c.ack(a.got.slice(0, 10).map((d) => d.position)); // partly acknowledged
  // The halt is read but not delivered (no credits left) when the cursor is committed.
  a.c.resetCredits();
  const halt = log.add(sampleDecision({ decisionId: `d${++seq}`, portfolioId: K, type: 'halt' }));
  a.tail([halt]);
  await settle();
  const committed = a.commit();
  a.rt.stop('SHUTTING_DOWN', 'killed'); // nothing after the commit survives

  const next = log.add(trade(K));
  const b = await run(log, committed, 1000);
  b.tail([next]);
  await settle();

  // The engine: the halt first (a first delivery, a handover after the restart, naming the last
  // delivery of the key before it), then the 290 unacknowledged again with what they named before,
  // then the next first delivery, naming the halt.
  const h = b.got[0];
  assert.equal(h?.position, '0:300');
  assert.equal(h.expedited, true);
  assert.equal(h.deliveryCount, 1);
  assert.equal(h.handover, true);
  assert.equal(h.prevPosition, '0:299');
  const again = b.got.slice(1, 291);
  assert.deepEqual(
    again.map((d) => [d.position, d.prevPosition, d.deliveryCount]),
    a.got.slice(10).map((d) => [d.position, d.prevPosition, 2]),
  );
  const n = b.got[291];
  assert.equal(n?.position, '0:301');
  assert.equal(n.deliveryCount, 1);
  assert.equal(n.prevPosition, '0:300');
  assert.equal(n.handover, undefined);
  assert.equal(b.got.length, 292);

  // The client: the halt came 290 deliveries before the one naming it; that is no gap.
  assert.deepEqual(gapsOf(a.got, b.got), []);
  // And a first delivery that names what was never received still is one.
  const lost = gapsOf(a.got, b.got, [{ ...n, position: '0:303', prevPosition: '0:302' }]);
  assert.deepEqual(
    lost.map((g) => [g.key, g.expected, g.got.position]),
    [[K, '0:302', '0:303']],
  );
  b.rt.stop('SHUTTING_DOWN', 'end');
});

test('a halt delivered before the commit and redelivered after the crash: the chain resumes from the committed anchor, with a handover', async () => {
  const log = new MemoryLog();
  const K = 'pf-halted';
  for (let i = 0; i < 20; i++) log.add(trade(K));
  const a = await run(log, START, 5); // five delivered, fifteen waiting
  assert.equal(a.got.length, 5);
  const halt = log.add(sampleDecision({ decisionId: `d${++seq}`, portfolioId: K, type: 'halt' }));
  a.tail([halt]);
  a.c.credit(1);
  await settle();
  assert.deepEqual(
    a.got.slice(5).map((d) => [d.position, d.prevPosition, d.expedited]),
    [['0:20', '0:4', true]],
    'the halt overtakes the fifteen waiting',
  );
  a.c.ack(['0:20']); // acknowledged, and so is 0:0
  a.c.ack(['0:0']);
  const committed = a.commit();
  // After the commit: three more first deliveries and acks the crash loses.
  a.c.credit(3);
  await settle();
  assert.deepEqual(
    a.got.slice(6).map((d) => [d.position, d.prevPosition]),
    [
      ['0:5', '0:20'],
      ['0:6', '0:5'],
      ['0:7', '0:6'],
    ],
  );
  a.c.ack(['0:5', '0:6']);
  a.rt.stop('SHUTTING_DOWN', 'killed');

  const b = await run(log, committed, 1000);
  // The four unacknowledged at the commit come again with what they named; then 0:5 onwards are
  // first deliveries again (the commit did not hold their delivery), chained from the halt, which is
  // the committed anchor of the key; the restart is a handover.
  assert.deepEqual(
    b.got.map((d) => [d.position, d.prevPosition, d.deliveryCount, d.handover ?? false]),
    [
      ['0:1', '0:0', 2, false],
      ['0:2', '0:1', 2, false],
      ['0:3', '0:2', 2, false],
      ['0:4', '0:3', 2, false],
      ['0:5', '0:20', 1, true],
      ...Array.from({ length: 14 }, (_, i) => [`0:${6 + i}`, `0:${5 + i}`, 1, false]),
    ],
  );
  assert.deepEqual(gapsOf(a.got, b.got), []);
  b.rt.stop('SHUTTING_DOWN', 'end');
});
