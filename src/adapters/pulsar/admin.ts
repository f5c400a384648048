/**
 * PulsarAdmin over Pulsar's admin REST API (`/admin/v2/...` on the broker's web service URL).
 * Every call has a timeout; network failures and 5xx answers are retriable PulsarErrors.
 */
import { PulsarError } from './client.ts';
import type { PulsarAdmin, RetentionPolicy } from './client.ts';
import type { MessageId } from './message-id.ts';

const TIMEOUT_MS = 15_000;

/** `persistent://t/ns/name` -> `persistent/t/ns/name` (each part URL-encoded). */
function topicPath(topic: string): string {
  const m = /^(persistent|non-persistent):\/\/([^/]+)\/([^/]+)\/(.+)$/.exec(topic);
  if (m === null) throw new PulsarError(`not a full topic name: '${topic}'`, { retriable: false });
  const [, domain, tenant, ns, name] = m as unknown as [string, string, string, string, string];
  return `${domain}/${encodeURIComponent(tenant)}/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
}

function namespacePath(namespace: string): string {
  const parts = namespace.split('/');
  if (parts.length !== 2 || parts.some((p) => p === ''))
    throw new PulsarError(`not a tenant/namespace name: '${namespace}'`, { retriable: false });
  return parts.map(encodeURIComponent).join('/');
}

function cursorBody(id: MessageId): Record<string, unknown> {
  return {
    ledgerId: id.ledgerId,
    entryId: id.entryId,
    partitionIndex: id.partition,
    batchIndex: id.batchIndex,
    isExcluded: false,
  };
}

/** The admin REST API of the broker (or cluster) at `webServiceUrl` (e.g. http://127.0.0.1:8080). */
export class RestPulsarAdmin implements PulsarAdmin {
  readonly #base: string;

  constructor(webServiceUrl: string) {
    this.#base = `${webServiceUrl.replace(/\/+$/, '')}/admin/v2`;
  }

  /** One call; resolves with the status and parsed body, throws PulsarError unless the status is ok or allowed. */
  async #call(
    method: string,
    path: string,
    body?: unknown,
    allow: readonly number[] = [],
  ): Promise<{ status: number; body: unknown }> {
    let res: Response;
    try {
      res = await fetch(`${this.#base}/${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (cause) {
      throw new PulsarError(`Pulsar admin ${method} ${path}: ${(cause as Error).message}`, {
        retriable: true,
        cause,
      });
    }
    const text = await res.text().catch(() => '');
    if (!res.ok && !allow.includes(res.status)) {
      throw new PulsarError(`Pulsar admin ${method} ${path}: HTTP ${res.status} ${text.slice(0, 500)}`, {
        retriable: res.status >= 500 || res.status === 429,
        status: res.status,
      });
    }
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: res.status, body: parsed };
  }

  async clusters(): Promise<string[]> {
    return (await this.#call('GET', 'clusters')).body as string[];
  }

  async ensureTenant(tenant: string, clusters?: readonly string[]): Promise<boolean> {
    const allowedClusters = clusters ?? (await this.clusters());
    const r = await this.#call(
      'PUT',
      `tenants/${encodeURIComponent(tenant)}`,
      { adminRoles: [], allowedClusters },
      [409],
    );
    return r.status !== 409;
  }

  async ensureNamespace(namespace: string): Promise<boolean> {
    const r = await this.#call('PUT', `namespaces/${namespacePath(namespace)}`, undefined, [409]);
    return r.status !== 409;
  }

  async setRetention(namespace: string, policy: RetentionPolicy): Promise<void> {
    await this.#call('POST', `namespaces/${namespacePath(namespace)}/retention`, policy);
  }

  async getRetention(namespace: string): Promise<RetentionPolicy | undefined> {
    const r = await this.#call('GET', `namespaces/${namespacePath(namespace)}/retention`);
    const b = r.body as Partial<RetentionPolicy> | undefined;
    if (b === undefined || b === null || typeof b !== 'object' || b.retentionTimeInMinutes === undefined)
      return undefined;
    return { retentionTimeInMinutes: b.retentionTimeInMinutes, retentionSizeInMB: b.retentionSizeInMB ?? 0 };
  }

  async createPartitionedTopic(topic: string, partitions: number): Promise<boolean> {
    const r = await this.#call('PUT', `${topicPath(topic)}/partitions`, partitions, [409]);
    return r.status !== 409;
  }

  async partitions(topic: string): Promise<number> {
    const r = await this.#call('GET', `${topicPath(topic)}/partitions`, undefined, [404]);
    if (r.status === 404) return 0;
    return (r.body as { partitions?: number }).partitions ?? 0;
  }

  async createTopic(topic: string): Promise<boolean> {
    const r = await this.#call('PUT', topicPath(topic), undefined, [409]);
    return r.status !== 409;
  }

  async createSubscription(
    topic: string,
    subscription: string,
    at: 'earliest' | 'latest' | MessageId = 'earliest',
  ): Promise<boolean> {
    const body =
      at === 'earliest'
        ? { ledgerId: -1, entryId: -1, partitionIndex: -1, isExcluded: false }
        : at === 'latest'
          ? { ledgerId: Number.MAX_SAFE_INTEGER, entryId: Number.MAX_SAFE_INTEGER, partitionIndex: -1 }
          : cursorBody(at);
    const r = await this.#call(
      'PUT',
      `${topicPath(topic)}/subscription/${encodeURIComponent(subscription)}`,
      body,
      [409],
    );
    return r.status !== 409;
  }

  async resetCursor(topic: string, subscription: string, at: MessageId): Promise<void> {
    await this.#call(
      'POST',
      `${topicPath(topic)}/subscription/${encodeURIComponent(subscription)}/resetcursor`,
      cursorBody(at),
    );
  }

  async subscriptions(topic: string): Promise<string[]> {
    return (await this.#call('GET', `${topicPath(topic)}/subscriptions`)).body as string[];
  }

  async deleteSubscription(topic: string, subscription: string): Promise<boolean> {
    const r = await this.#call(
      'DELETE',
      `${topicPath(topic)}/subscription/${encodeURIComponent(subscription)}?force=true`,
      undefined,
      [404],
    );
    return r.status !== 404;
  }

  async lastMessageId(topic: string): Promise<MessageId | undefined> {
    const r = await this.#call('GET', `${topicPath(topic)}/lastMessageId`);
    const b = r.body as { ledgerId?: number; entryId?: number; partitionIndex?: number; batchIndex?: number };
    if (b === undefined || typeof b.ledgerId !== 'number' || typeof b.entryId !== 'number') return undefined;
    if (b.entryId < 0 || b.ledgerId < 0) return undefined;
    return {
      ledgerId: b.ledgerId,
      entryId: b.entryId,
      batchIndex: b.batchIndex ?? -1,
      partition: b.partitionIndex ?? -1,
      batchSize: 0,
    };
  }

  async deleteTopic(topic: string): Promise<void> {
    const n = await this.partitions(topic);
    const path = n > 0 ? `${topicPath(topic)}/partitions` : topicPath(topic);
    await this.#call('DELETE', `${path}?force=true`, undefined, [404]);
  }
}
