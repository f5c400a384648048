/** Shapes shared by the delivery engine and the transports that drive it. */
import type { ErrorCode } from '../errors/index.ts';

/** Where a transport's deliveries go: one connection (or the REST pull consumer). */
export interface ConsumerSink {
  /** Sends encoded deliveries (each a JSON object text) as one frame. */
  send(deliveries: readonly string[]): void;
  /** Ends the connection with a registry code (the consumer is detached first). */
  close(code: ErrorCode, message: string): void;
  /** Optional: transports that can carry notices (WebSocket, SSE) implement it; others show them in stats. */
  notice?(n: ConsumerNotice): void;
}

/** A consumer attached to a subscription. */
export interface ConsumerHandle {
  readonly id: string;
  readonly subscription: string;
  /** Grants `n` more deliveries. */
  credit(n: number): void;
  /** Takes back every credit not used yet (the REST pull consumer after a fetch). */
  resetCredits(): void;
  /** Sends what can be sent now, synchronously (the REST pull consumer during a fetch). */
  pump(): void;
  /** Individual acks: one result per position, in order. */
  ack(positions: readonly unknown[]): AckResult[];
  /** Cumulative ack: every delivery to this consumer in that partition up to and including the position. */
  ackUpTo(position: unknown): AckResult;
  /** Negative acks: the deliveries come again after `delayMs` (the backoff when absent). */
  nack(positions: readonly unknown[], delayMs?: number): AckResult[];
  /** Detaches: what is outstanding at this consumer comes again elsewhere. Idempotent. */
  detach(): void;
}

/** The outcome of one ack or nack. */
export type AckResult =
  | { readonly position: string; readonly ok: true; readonly count?: number }
  | { readonly position: string; readonly ok: false; readonly code: ErrorCode; readonly message: string };

/** Counters of one subscription (for status and metrics). */
export interface SubscriptionCounters {
  delivered: number;
  redelivered: number;
  acked: number;
  nacked: number;
  filtered: number;
  expired: number;
  superseded: number;
  deadLettered: number;
  transformFailures: number;
  skipped: number;
  ackTimeouts: number;
  /** Pending entries a `drop` retention policy removed before they were acknowledged (ADR 0017). */
  retentionLost: number;
}

/** A notice to a consumer that is not a delivery (ADR 0017: retention removed unacknowledged records). */
export interface ConsumerNotice {
  readonly type: 'retention-lost';
  readonly subscription: string;
  readonly partition: number;
  /** First position removed for this subscription (its ack floor then). */
  readonly from: string;
  /** First position still there: the subscription goes on from here. */
  readonly to: string;
  /** Pending (read, unacknowledged) entries among them; the unread ones are not counted. */
  readonly pending: number;
  /** ISO 8601. */
  readonly at: string;
}
