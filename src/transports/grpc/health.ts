/**
 * The standard health service (grpc.health.v1) with a status per service: SERVING while the
 * instance is ready, NOT_SERVING from the start of a shutdown (and before readiness).
 */
import { status as GrpcCode, type ServerWritableStream } from '@grpc/grpc-js';
import {
  HealthCheckResponse_ServingStatus as Serving,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthServer,
} from './gen/grpc/health/v1/health.ts';

/** Statuses per service name ('' is the whole server) and their watchers. */
export class HealthState {
  readonly #status = new Map<string, Serving>();
  readonly #watchers = new Set<(service: string, s: Serving) => void>();

  constructor(services: readonly string[]) {
    for (const s of ['', ...services]) this.#status.set(s, Serving.NOT_SERVING);
  }

  /** Sets every service's status. */
  setAll(serving: boolean): void {
    const s = serving ? Serving.SERVING : Serving.NOT_SERVING;
    for (const name of this.#status.keys()) {
      if (this.#status.get(name) === s) continue;
      this.#status.set(name, s);
      for (const w of this.#watchers) w(name, s);
    }
  }

  /** A service's status, or undefined when the service is unknown. */
  get(service: string): Serving | undefined {
    return this.#status.get(service);
  }

  /** Every status. */
  all(): Record<string, Serving> {
    return Object.fromEntries(this.#status);
  }

  /** Calls `fn` on each change; returns the unsubscription. */
  watch(fn: (service: string, s: Serving) => void): () => void {
    this.#watchers.add(fn);
    return () => this.#watchers.delete(fn);
  }
}

/** The grpc.health.v1.Health implementation. */
export function healthService(state: HealthState): HealthServer {
  return {
    check(call, cb) {
      const s = state.get(call.request.service);
      if (s === undefined)
        return cb({ code: GrpcCode.NOT_FOUND, details: `unknown service ${call.request.service}` });
      cb(null, { status: s });
    },
    list(_call, cb) {
      const statuses: Record<string, HealthCheckResponse> = {};
      for (const [name, s] of Object.entries(state.all())) statuses[name] = { status: s };
      cb(null, { statuses });
    },
    watch(call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) {
      const name = call.request.service;
      call.write({ status: state.get(name) ?? Serving.SERVICE_UNKNOWN });
      const stop = state.watch((service, s) => {
        if (service === name) call.write({ status: s });
      });
      call.on('cancelled', stop);
      call.on('error', stop);
      call.on('close', stop);
    },
  };
}
