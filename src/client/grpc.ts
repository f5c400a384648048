/**
 * A TypeScript gRPC client of cds (ADR 0012): typed clients of DecisionService and
 * SubscriptionService, credentials as metadata, and the rich error details of a failed call
 * (google.rpc.Status from the `grpc-status-details-bin` trailer) decoded, and a Session consumer that
 * reconnects and resumes by itself.
 */
import {
  credentials,
  Metadata,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientDuplexStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { DecisionServiceClient } from '../transports/grpc/gen/cds/v1/decisions.ts';
import {
  SubscriptionServiceClient,
  type SessionRequest,
  type SessionResponse,
} from '../transports/grpc/gen/cds/v1/subscriptions.ts';
import { BadRequest, ErrorInfo, RetryInfo } from '../transports/grpc/gen/google/rpc/error_details.ts';
import { Status } from '../transports/grpc/gen/google/rpc/status.ts';

export { DecisionServiceClient, SubscriptionServiceClient };

/** Metadata carrying an API key or JWT as `authorization: Bearer ...`. */
export function bearer(token: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/**
 * TLS towards a listener with `grpc.tls` set (PEM contents, not file names). With no field at all the
 * system's CA store verifies the server; `cert` + `key` present a client certificate (mTLS).
 */
export interface GrpcTls {
  /** CA bundle that the server's certificate must chain to. */
  readonly ca?: string | Buffer;
  /** Client certificate chain (mTLS). */
  readonly cert?: string | Buffer;
  /** Private key of `cert`. */
  readonly key?: string | Buffer;
  /** The name to verify the server's certificate against, when it differs from the address's host. */
  readonly serverName?: string;
}

const pem = (v: string | Buffer | undefined) => (v === undefined ? null : Buffer.from(v));

/**
 * The HTTP/2 receive window of the client's connection and streams. HTTP/2's default (64 KiB) lets the
 * server send one window of deliveries per round trip of a WINDOW_UPDATE; when the service's event
 * loop is busy with publishing, that round trip is its event-loop lag, and a Session was held to a few
 * hundred deliveries/s while WebSocket consumers (TCP's window only) kept up. Credits, not the
 * window, are the flow control of a Session, so the window is made large enough not to matter.
 */
const RECEIVE_WINDOW = { 'grpc-node.flow_control_window': 16 * 1024 * 1024 } as const;

/** Channel credentials and options: plaintext without `tls`, TLS (or mTLS) with it. */
export function channel(tls?: GrpcTls): { creds: ChannelCredentials; options: ChannelOptions } {
  if (tls === undefined) return { creds: credentials.createInsecure(), options: { ...RECEIVE_WINDOW } };
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw new TypeError('a client certificate needs both cert and key');
  return {
    creds: credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert)),
    options:
      tls.serverName === undefined
        ? { ...RECEIVE_WINDOW }
        : { ...RECEIVE_WINDOW, 'grpc.ssl_target_name_override': tls.serverName },
  };
}

/** Both service clients on one address (`host:port`): plaintext, or TLS with `tls`. */
export function connect(
  address: string,
  tls?: GrpcTls,
): {
  decisions: DecisionServiceClient;
  subscriptions: SubscriptionServiceClient;
  close(): void;
} {
  const { creds, options } = channel(tls);
  const decisions = new DecisionServiceClient(address, creds, options);
  const subscriptions = new SubscriptionServiceClient(address, creds, {
    ...options,
    channelOverride: decisions.getChannel(),
  } as never);
  return {
    decisions,
    subscriptions,
    close() {
      decisions.close();
      subscriptions.close();
    },
  };
}

/** What the server said about a failed call, from its trailers. */
export interface ErrorDetails {
  readonly grpcCode: number;
  readonly message: string;
  /** The cds registry code (ErrorInfo.reason), when present. */
  readonly code?: string;
  readonly retriable?: boolean;
  /** BadRequest field violations. */
  readonly fieldViolations: { field: string; description: string; reason: string }[];
  /** RetryInfo, in milliseconds. */
  readonly retryDelayMs?: number;
  /** NOT_OWNER (cluster mode, ADR 0015): the instance that dispatches the subscription. */
  readonly owner?: { readonly id?: string; readonly grpc?: string; readonly url?: string };
}

/** Decodes the rich status of a failed call. */
export function errorDetails(err: Partial<ServiceError>): ErrorDetails {
  const raw = err.metadata?.get('grpc-status-details-bin')[0];
  const out: {
    grpcCode: number;
    message: string;
    code?: string;
    retriable?: boolean;
    fieldViolations: ErrorDetails['fieldViolations'];
    retryDelayMs?: number;
    owner?: { id?: string; grpc?: string; url?: string };
  } = { grpcCode: err.code ?? 2, message: err.details ?? '', fieldViolations: [] };
  if (!Buffer.isBuffer(raw)) return out;
  const status = Status.decode(raw);
  out.message = status.message;
  for (const d of status.details) {
    const type = d.typeUrl.slice(d.typeUrl.lastIndexOf('/') + 1);
    if (type === 'google.rpc.ErrorInfo') {
      const info = ErrorInfo.decode(d.value);
      out.code = info.reason;
      out.retriable = info.metadata['retriable'] === 'true';
      const { owner: id, ownerGrpc: grpc, ownerUrl: url } = info.metadata;
      if (id !== undefined || grpc !== undefined)
        out.owner = {
          ...(id === undefined ? {} : { id }),
          ...(grpc === undefined ? {} : { grpc }),
          ...(url === undefined ? {} : { url }),
        };
    } else if (type === 'google.rpc.BadRequest') {
      out.fieldViolations.push(...BadRequest.decode(d.value).fieldViolations);
    } else if (type === 'google.rpc.RetryInfo') {
      const r = RetryInfo.decode(d.value).retryDelay;
      if (r !== undefined) out.retryDelayMs = r.seconds * 1000 + Math.round(r.nanos / 1e6);
    }
  }
  return out;
}

/** Options of a {@link GrpcSubscriber}. */
export interface GrpcSubscriberOptions {
  /** `host:port` of a cds gRPC listener. */
  readonly address: string;
  /** More instances of the same cluster, tried in turn when the current one cannot be reached. */
  readonly addresses?: readonly string[];
  /** TLS (or mTLS) towards a listener with `grpc.tls` set; plaintext when absent. */
  readonly tls?: GrpcTls;
  /** API key or JWT. */
  readonly token: string;
  readonly subscription: string;
  /** Credits granted at each (re)subscribe; default 256. */
  readonly credits?: number;
  /** Reconnect backoff: first delay and cap, in ms (defaults 100 and 5,000). */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Client heartbeat interval; a stream silent for three intervals is dropped and reconnected (default 10,000 ms). */
  readonly heartbeatMs?: number;
  /**
   * Where the first subscribe resumes (a JSON seek target, for example `{"positions": [...]}`);
   * reconnects always resume from the subscription's durable cursor.
   */
  readonly resume?: unknown;
}

/** A delivery as DESIGN 5 shapes it. */
export interface GrpcDelivery {
  readonly position: string;
  readonly prevPosition: string | null;
  readonly epoch: string;
  readonly key: string;
  readonly topics: readonly string[];
  readonly deliveryCount: number;
  readonly decision: Record<string, unknown>;
  readonly expedited?: boolean;
  readonly expired?: boolean;
}

/** What a subscriber yields. */
export type GrpcSubscriberEvent =
  | {
      readonly type: 'subscribed';
      readonly consumer: string;
      readonly epoch: string;
      readonly attempt: number;
    }
  | { readonly type: 'deliveries'; readonly deliveries: GrpcDelivery[] }
  /**
   * This stream found the log at another epoch than the previous one: the service was restored from
   * a backup (or reset). Positions of the old epoch mean nothing now; unacknowledged deliveries come
   * again from the subscription's restored cursor, in the new epoch (ADR 0014).
   */
  | { readonly type: 'epochChanged'; readonly previous: string; readonly epoch: string }
  | {
      readonly type: 'reconnecting';
      readonly attempt: number;
      readonly delayMs: number;
      readonly error: ErrorDetails;
    }
  | { readonly type: 'error'; readonly error: ErrorDetails }
  | { readonly type: 'closed'; readonly error?: ErrorDetails };

/** gRPC codes after which a reconnect may succeed. */
const RETRY_CODES = new Set([1, 4, 8, 10, 13, 14]); // CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE

/**
 * A Session consumer that reconnects by itself: on a retriable end (shutdown of the instance, a
 * dropped connection, a silent stream) it subscribes again after a backoff, and the subscription's
 * durable cursor brings back what was not acknowledged (at-least-once). Events are read with
 * `for await`. Acks, nacks and credits go to the current stream; acks of deliveries received
 * before a reconnect may answer UNKNOWN_DELIVERY (they come again).
 */
export class GrpcSubscriber implements AsyncIterable<GrpcSubscriberEvent> {
  readonly #opts: GrpcSubscriberOptions;
  #client: SubscriptionServiceClient;
  readonly #channel: ReturnType<typeof channel>;
  readonly #seeds: readonly string[];
  #seed = 0;
  /** NOT_OWNER answers followed in a row (at most 5, then the next seed). */
  #redirects = 0;
  /** The first subscribe's resume, until a subscribe succeeds (a redirected one is sent again). */
  #resume: unknown;
  readonly #events: GrpcSubscriberEvent[] = [];
  #wake: (() => void) | undefined;
  #stream: ClientDuplexStream<SessionRequest, SessionResponse> | undefined;
  #closed = false;
  #attempt = 0;
  #nextId = 2;
  #lastSeen = Date.now();
  #epoch: string | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(opts: GrpcSubscriberOptions) {
    this.#opts = opts;
    this.#channel = channel(opts.tls);
    this.#seeds = [opts.address, ...(opts.addresses ?? [])];
    this.#client = this.#clientFor(opts.address);
    this.#resume = opts.resume;
    const hb = opts.heartbeatMs ?? 10_000;
    this.#timer = setInterval(() => {
      const s = this.#stream;
      if (s === undefined) return;
      if (Date.now() - this.#lastSeen > 3 * hb) return s.cancel(); // ends with CANCELLED: reconnect
      s.write(request(0, { heartbeat: { atMs: Date.now(), stats: undefined } }));
    }, hb);
    this.#timer.unref();
    this.#open();
  }

  #clientFor(address: string): SubscriptionServiceClient {
    return new SubscriptionServiceClient(address, this.#channel.creds, this.#channel.options);
  }

  /** Where the next session goes (cluster mode, ADR 0015): the owner a NOT_OWNER named, else a seed. */
  #retarget(details: ErrorDetails, subscribed: boolean): number | undefined {
    let address: string | undefined;
    if (details.code === 'NOT_OWNER' && details.owner?.grpc !== undefined && this.#redirects < 5) {
      this.#redirects++;
      address = details.owner.grpc;
    } else if (this.#seeds.length > 1 && (!subscribed || this.#redirects > 0)) {
      this.#redirects = 0;
      this.#seed = (this.#seed + 1) % this.#seeds.length;
      address = this.#seeds[this.#seed];
    }
    if (address === undefined) return undefined;
    this.#client.close();
    this.#client = this.#clientFor(address);
    return details.code === 'NOT_OWNER' && this.#redirects > 0 ? 0 : undefined;
  }

  #push(e: GrpcSubscriberEvent): void {
    this.#events.push(e);
    this.#wake?.();
  }

  #open(): void {
    const s = this.#client.session(bearer(this.#opts.token));
    const resume = this.#resume;
    let subscribed = false;
    this.#stream = s;
    this.#lastSeen = Date.now();
    const attempt = this.#attempt;
    s.on('data', (m: SessionResponse) => {
      this.#lastSeen = Date.now();
      if (m.deliveries !== undefined) {
        this.#push({
          type: 'deliveries',
          deliveries: m.deliveries.deliveries.map(
            (d) => JSON.parse(Buffer.from(d).toString('utf8')) as GrpcDelivery,
          ),
        });
      } else if (m.subscribed !== undefined) {
        this.#attempt = 0;
        this.#redirects = 0;
        this.#resume = undefined;
        subscribed = true;
        const previous = this.#epoch;
        this.#epoch = m.subscribed.epoch;
        if (previous !== undefined && previous !== m.subscribed.epoch)
          this.#push({ type: 'epochChanged', previous, epoch: m.subscribed.epoch });
        this.#push({
          type: 'subscribed',
          consumer: m.subscribed.consumer,
          epoch: m.subscribed.epoch,
          attempt,
        });
      } else if (m.error !== undefined) {
        const e = m.error;
        this.#push({
          type: 'error',
          error: {
            grpcCode: e.grpcCode,
            message: e.message,
            code: e.code,
            retriable: e.retriable,
            fieldViolations: e.fieldErrors.map((f) => ({
              field: f.path,
              description: f.message,
              reason: f.code,
            })),
          },
        });
      }
    });
    s.on('error', (err: ServiceError) => {
      if (this.#stream !== s) return;
      this.#stream = undefined;
      const details = errorDetails(err);
      if (this.#closed) return;
      if (!RETRY_CODES.has(err.code) && details.retriable !== true) {
        this.#closed = true;
        clearInterval(this.#timer);
        this.#client.close();
        return this.#push({ type: 'closed', error: details });
      }
      const b = this.#opts.backoff ?? { initialMs: 100, maxMs: 5000 };
      const delayMs =
        this.#retarget(details, subscribed) ??
        Math.max(
          details.retryDelayMs ?? 0,
          Math.min(b.maxMs, b.initialMs * 2 ** Math.min(this.#attempt, 16)),
        );
      this.#attempt++;
      this.#push({ type: 'reconnecting', attempt: this.#attempt, delayMs, error: details });
      setTimeout(() => {
        if (!this.#closed) this.#open();
      }, delayMs).unref();
    });
    s.on('end', () => undefined);
    s.write(
      request(1, {
        subscribe: {
          subscription: this.#opts.subscription,
          credits: this.#opts.credits ?? 256,
          resume: resume === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(resume)),
        },
      }),
    );
  }

  /** Acknowledges positions (individually), and cumulatively up to `upTo` when given. */
  ack(positions: readonly string[], upTo = ''): void {
    this.#stream?.write(request(this.#nextId++, { ack: { positions: [...positions], upTo } }));
  }

  /** Asks for positions to come again after `delayMs` (the subscription's backoff when 0). */
  nack(positions: readonly string[], delayMs = 0): void {
    this.#stream?.write(request(this.#nextId++, { nack: { positions: [...positions], delayMs } }));
  }

  /** Grants `n` more deliveries on the current stream. */
  credit(n: number): void {
    this.#stream?.write(request(this.#nextId++, { credits: { n } }));
  }

  /** Stops: ends the stream (acks already written still reach the server) and the iteration. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    const s = this.#stream;
    this.#stream = undefined;
    if (s === undefined) this.#client.close();
    else {
      // Half-close, so that acks written just before reach the server; cancel if it does not end soon.
      const t = setTimeout(() => s.cancel(), 2000);
      t.unref();
      s.on('status', () => {
        clearTimeout(t);
        this.#client.close();
      });
      s.end();
    }
    this.#push({ type: 'closed' });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GrpcSubscriberEvent> {
    for (;;) {
      const e = this.#events.shift();
      if (e !== undefined) {
        yield e;
        if (e.type === 'closed') return;
        continue;
      }
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
  }
}

function request(id: number, m: Partial<SessionRequest>): SessionRequest {
  return {
    id,
    subscribe: undefined,
    ack: undefined,
    nack: undefined,
    credits: undefined,
    update: undefined,
    heartbeat: undefined,
    ...m,
  };
}
