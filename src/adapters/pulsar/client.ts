/**
 * The small Pulsar client that the cluster-mode adapters use (ADR 0014): produce, read from a message
 * id, and the few admin calls they need. The only implementation today speaks Pulsar's WebSocket and
 * admin REST APIs (./ws-client.ts, ./admin.ts), because the native client cannot be installed on this
 * project's machines; a binary-protocol client can replace it without touching the adapters.
 *
 * Topics are full names (`persistent://tenant/namespace/name`, see {@link topicName}); a partition of
 * a partitioned topic is the topic `...-partition-N`.
 */
import type { MessageId } from './message-id.ts';

export type { MessageId } from './message-id.ts';

/** One message to send. */
export interface OutgoingMessage {
  /** The body, sent byte for byte. */
  readonly payload: Uint8Array;
  /** Message properties (string to string). */
  readonly properties?: Readonly<Record<string, string>>;
  /** The message key (Pulsar's partition key), when any. */
  readonly key?: string;
  /** Event time in milliseconds since the epoch; 0 or absent leaves it unset (Pulsar's convention). */
  readonly eventTime?: number;
}

/** One message as a reader receives it. */
export interface IncomingMessage {
  readonly id: MessageId;
  readonly payload: Buffer;
  readonly properties: Readonly<Record<string, string>>;
  readonly key: string | undefined;
  /** Broker publish time, milliseconds since the epoch. */
  readonly publishTime: number;
  /** Event time in milliseconds, when the producer set one. */
  readonly eventTime: number | undefined;
}

/** Options of a producer. */
export interface ProducerOptions {
  /**
   * Pulsar producer batching: messages sent close together are stored as one entry (default true).
   * Acks still come per message, each with its own id (ledger, entry, batch index).
   */
  readonly batching?: boolean;
  /** Longest time a message waits for its batch to fill, in ms (default 1). */
  readonly batchingMaxPublishDelayMs?: number;
  /** Most messages in one Pulsar batch (default 1000). */
  readonly batchingMaxMessages?: number;
  /** Most messages sent and not yet acknowledged; further sends wait for room (default 10,000). */
  readonly maxPendingMessages?: number;
  /** Broker-side send timeout in ms (default 30,000). */
  readonly sendTimeoutMs?: number;
}

/** A producer on one topic. It reconnects by itself (with backoff) after the connection is lost. */
export interface PulsarProducer {
  readonly topic: string;
  /** Whether the producer is connected now (sends fail fast with a retriable error when not). */
  readonly connected: boolean;
  /**
   * Sends one message; resolves with its id once the broker has acknowledged it (stored). Sends are
   * pipelined: call it many times without awaiting; messages are stored in call order.
   * @throws PulsarError (retriable) when the connection is down or lost before the ack (the message
   *   may or may not have been stored), (not retriable) when the broker refused the message.
   */
  send(message: OutgoingMessage): Promise<MessageId>;
  /** Resolves once connected (at once if it is), or rejects when `signal` aborts or the producer closes. */
  whenConnected(signal?: AbortSignal): Promise<void>;
  /** Closes the producer; pending sends fail. Idempotent. */
  close(): Promise<void>;
}

/** Where a reader starts. */
export type StartAt =
  | 'earliest'
  | 'latest'
  /** After this message (exclusive), as Pulsar readers do. */
  | { readonly after: MessageId }
  /** At this message (inclusive). */
  | { readonly at: MessageId };

/** What a reader yields: messages in topic order, or a change of its connection. */
export type ReaderEvent =
  | { readonly type: 'messages'; readonly messages: readonly IncomingMessage[] }
  | { readonly type: 'disconnected'; readonly error: PulsarError }
  | { readonly type: 'connected' };

/** A non-durable reader of one (non-partitioned, or single partition) topic. */
export interface PulsarReader extends AsyncIterable<ReaderEvent> {
  readonly topic: string;
  /** Id of the last message yielded, if any. After a reconnect the reader resumes after it. */
  readonly lastId: MessageId | undefined;
  /** Ends the iteration and closes the connection. Idempotent. */
  close(): Promise<void>;
}

/** Retention of a namespace (Pulsar's RetentionPolicies): -1 is unlimited, 0 keeps nothing acknowledged. */
export interface RetentionPolicy {
  readonly retentionTimeInMinutes: number;
  readonly retentionSizeInMB: number;
}

/** The admin REST API calls the adapters use. Names are full topic names unless stated. */
export interface PulsarAdmin {
  /** Clusters of the instance (also the readiness probe). */
  clusters(): Promise<string[]>;
  /** Creates a tenant allowed on `clusters` (default: all); false when it existed. */
  ensureTenant(tenant: string, clusters?: readonly string[]): Promise<boolean>;
  /** Creates `tenant/namespace`; false when it existed. */
  ensureNamespace(namespace: string): Promise<boolean>;
  /** Sets the retention policy of `tenant/namespace`. */
  setRetention(namespace: string, policy: RetentionPolicy): Promise<void>;
  /** The retention policy of `tenant/namespace` (undefined: the broker's default applies). */
  getRetention(namespace: string): Promise<RetentionPolicy | undefined>;
  /** Creates a partitioned topic; false when a topic of that name existed (whatever its partitions). */
  createPartitionedTopic(topic: string, partitions: number): Promise<boolean>;
  /** Partitions of a topic: 0 when it is not partitioned or does not exist. */
  partitions(topic: string): Promise<number>;
  /** Creates a non-partitioned topic; false when it existed. */
  createTopic(topic: string): Promise<boolean>;
  /**
   * Creates a durable subscription positioned at `at` (default earliest); false when it existed (its
   * position is then left as it is). On a partitioned topic it is created on every partition.
   */
  createSubscription(
    topic: string,
    subscription: string,
    at?: 'earliest' | 'latest' | MessageId,
  ): Promise<boolean>;
  /** Moves a subscription's cursor so that `at` is the next message it would receive. */
  resetCursor(topic: string, subscription: string, at: MessageId): Promise<void>;
  /** Names of the subscriptions of a topic. */
  subscriptions(topic: string): Promise<string[]>;
  /** Deletes a subscription (true) or reports it absent (false). */
  deleteSubscription(topic: string, subscription: string): Promise<boolean>;
  /** Id of the last message of a non-partitioned topic (or partition); undefined when it has none. */
  lastMessageId(topic: string): Promise<MessageId | undefined>;
  /** Deletes a topic (partitioned or not) and its data, forcing producers and readers off. */
  deleteTopic(topic: string): Promise<void>;
}

/** A Pulsar client: producers, readers and the admin API of one Pulsar instance. */
export interface PulsarClient {
  readonly admin: PulsarAdmin;
  /** Opens a producer (connecting in the background; see {@link PulsarProducer.whenConnected}). */
  producer(topic: string, options?: ProducerOptions): PulsarProducer;
  /** Opens a reader starting at `start`. */
  reader(topic: string, start: StartAt): PulsarReader;
  /** Closes every producer and reader it opened. */
  close(): Promise<void>;
}

/** A failure talking to Pulsar. */
export class PulsarError extends Error {
  override readonly name = 'PulsarError';
  /** Whether trying again later may succeed (connection lost, broker unavailable, timeouts). */
  readonly retriable: boolean;
  /** HTTP status of an admin call, when it came from one. */
  readonly status: number | undefined;

  constructor(message: string, opts: { retriable: boolean; status?: number; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.retriable = opts.retriable;
    this.status = opts.status;
  }
}

/** The full name of a persistent topic, or of one partition of it. */
export function topicName(tenant: string, namespace: string, topic: string, partition?: number): string {
  const base = `persistent://${tenant}/${namespace}/${topic}`;
  return partition === undefined ? base : `${base}-partition-${partition}`;
}
