/**
 * A subscriber process of a benchmark run (forked by the harness, configured over IPC): runs
 * several subscribers with the product's own clients (`GrpcSubscriber` on gRPC Sessions,
 * `Subscriber` on WebSocket, both from src/client), acknowledges every delivery and grants the
 * credits back, and records each receipt (decision number, revision, position, deliveryCount,
 * receive time in the shared clock) in its subscriber's file (bench/lib/receipts.ts). It counts
 * nothing about loss itself: the harness compares the receipts with the generator's acknowledgements.
 */
import { join } from 'node:path';
import { GrpcSubscriber, type GrpcDelivery } from '../../src/client/grpc.ts';
import { GapDetector, Subscriber, type Delivery } from '../../src/client/index.ts';
import { monoMs } from './clock.ts';
import { decisionNumber, ReceiptWriter } from './receipts.ts';

/** What a subscriber process is told. */
export interface SubscriberProcessConfig {
  readonly url: string;
  /** host:port of the gRPC listener. */
  readonly grpcAddress: string;
  readonly key: string;
  /** Decision ids of the run are `<idPrefix>-<n>`. */
  readonly idPrefix: string;
  /** Receipt files go to `<runDir>/sub-<index>.bin`. */
  readonly runDir: string;
  readonly credits: number;
  readonly subscribers: readonly {
    readonly index: number;
    readonly name: string;
    readonly transport: 'grpc' | 'ws';
  }[];
}

/** What one subscriber saw, besides its receipts. */
export interface SubscriberStats {
  readonly index: number;
  readonly receipts: number;
  /** Receipts with deliveryCount 1 (first deliveries; the drain waits for as many as expected). */
  readonly firsts: number;
  /** Deliveries whose prevPosition names one this consumer never received (src/client GapDetector). */
  readonly gaps: number;
  /** Error events (the first few messages are kept). */
  readonly errors: number;
  readonly errorMessages: readonly string[];
  /** Reconnections and disconnections after the first subscribe. */
  readonly reconnects: number;
  /** Shared monotonic ms: connecting started, subscribed, first and last receipt (null: none). */
  readonly connectMono: number;
  readonly subscribedMono: number | null;
  readonly firstReceiptMono: number | null;
  readonly lastReceiptMono: number | null;
}

/** Subscriber process -> harness. */
export type SubscriberProcessMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly receipts: number; readonly firsts: number }
  | { readonly type: 'stopped'; readonly subscribers: readonly SubscriberStats[] }
  | { readonly type: 'failed'; readonly error: string };

/** Harness -> subscriber process. */
export type SubscriberProcessCommand =
  { readonly type: 'start'; readonly config: SubscriberProcessConfig } | { readonly type: 'stop' };

function send(msg: SubscriberProcessMessage, then?: () => void): void {
  process.send?.(msg, undefined, undefined, then);
}

/** One running subscriber: its client, its receipt file and its counters. */
interface Running {
  readonly stats: {
    -readonly [K in keyof SubscriberStats]: SubscriberStats[K] extends readonly string[]
      ? string[]
      : SubscriberStats[K];
  };
  readonly writer: ReceiptWriter;
  readonly loop: Promise<void>;
  close(): void;
}

function start(cfg: SubscriberProcessConfig, spec: SubscriberProcessConfig['subscribers'][number]): Running {
  const writer = new ReceiptWriter(join(cfg.runDir, `sub-${spec.index}.bin`));
  const prefixDash = `${cfg.idPrefix}-`;
  const stats: Running['stats'] = {
    index: spec.index,
    receipts: 0,
    firsts: 0,
    gaps: 0,
    errors: 0,
    errorMessages: [],
    reconnects: 0,
    connectMono: monoMs(),
    subscribedMono: null,
    firstReceiptMono: null,
    lastReceiptMono: null,
  };
  const error = (message: string) => {
    if (stopping) return; // the ends of streams that the stop itself closes
    stats.errors++;
    if (stats.errorMessages.length < 5) stats.errorMessages.push(message);
  };
  const record = (ds: readonly (Delivery | GrpcDelivery)[]): string[] => {
    const t = monoMs();
    stats.firstReceiptMono ??= t;
    stats.lastReceiptMono = t;
    const positions = new Array<string>(ds.length);
    for (let i = 0; i < ds.length; i++) {
      const d = ds[i]!;
      const decision = d.decision as { decisionId?: unknown; revision?: unknown };
      writer.add(
        decisionNumber(decision.decisionId, prefixDash),
        Number(decision.revision),
        d.deliveryCount,
        d.position,
        t,
      );
      positions[i] = d.position;
      if (d.deliveryCount === 1) stats.firsts++;
    }
    stats.receipts = writer.count;
    return positions;
  };

  if (spec.transport === 'grpc') {
    const sub = new GrpcSubscriber({
      address: cfg.grpcAddress,
      token: cfg.key,
      subscription: spec.name,
      credits: cfg.credits,
    });
    // The WebSocket client checks prevPosition chains itself; the gRPC one leaves it to the caller.
    const gaps = new GapDetector();
    const loop = (async () => {
      for await (const e of sub) {
        if (e.type === 'deliveries') {
          const positions = record(e.deliveries);
          for (const d of e.deliveries) if (gaps.check(d as unknown as Delivery) !== undefined) stats.gaps++;
          sub.ack(positions);
          sub.credit(positions.length);
        } else if (e.type === 'subscribed') {
          if (stats.subscribedMono === null) stats.subscribedMono = monoMs();
          else stats.reconnects++;
        } else if (e.type === 'error') error(`${e.error.code ?? e.error.grpcCode}: ${e.error.message}`);
        else if (e.type === 'reconnecting') error(`reconnecting: ${e.error.message}`);
        else if (e.type === 'closed' && e.error !== undefined) error(`closed: ${e.error.message}`);
      }
    })();
    return { stats, writer, loop, close: () => sub.close() };
  }

  const sub = new Subscriber({
    url: cfg.url,
    apiKey: cfg.key,
    subscription: spec.name,
    credits: cfg.credits,
  });
  const loop = (async () => {
    for await (const e of sub.events()) {
      if (e.type === 'deliveries') {
        const positions = record(e.deliveries);
        sub.ack(positions).catch(() => undefined); // grants the credits back once answered
      } else if (e.type === 'connected') {
        if (stats.subscribedMono === null) stats.subscribedMono = monoMs();
        else stats.reconnects++;
      } else if (e.type === 'gap') stats.gaps++;
      else if (e.type === 'error') error(`${e.error.code}: ${e.error.message}`);
      else if (e.type === 'disconnected') error(`disconnected: ${e.code} ${e.reason}`);
    }
  })();
  return { stats, writer, loop, close: () => sub.close() };
}

let running: Running[] = [];
let stopping = false;

process.on('message', (cmd: SubscriberProcessCommand) => {
  if (cmd.type === 'start') {
    running = cmd.config.subscribers.map((s) => start(cmd.config, s));
    const progress = setInterval(() => {
      let receipts = 0;
      let firsts = 0;
      for (const r of running) {
        receipts += r.stats.receipts;
        firsts += r.stats.firsts;
      }
      send({ type: 'progress', receipts, firsts });
    }, 250);
    progress.unref();
    const ready = setInterval(() => {
      if (running.every((r) => r.stats.subscribedMono !== null)) {
        clearInterval(ready);
        send({ type: 'ready' });
      }
    }, 20);
  } else if (cmd.type === 'stop') {
    stopping = true;
    for (const r of running) r.close();
    // Every loop ends once its client is closed; the files are complete after that.
    Promise.all(running.map((r) => r.loop)).then(
      () => {
        for (const r of running) r.writer.close();
        send({ type: 'stopped', subscribers: running.map((r) => ({ ...r.stats })) }, () => process.exit(0));
      },
      (err: unknown) =>
        send({ type: 'failed', error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
    );
  }
});
process.on('uncaughtException', (err) => {
  send({ type: 'failed', error: String(err.stack ?? err) }, () => process.exit(1));
});
