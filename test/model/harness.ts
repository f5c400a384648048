/**
 * Small helpers shared by the delivery tests (test/integration/delivery-*.test.ts) and the model run:
 * publishing, subscriptions, REST pull, waiting for a condition with a generous deadline.
 */
import assert from 'node:assert/strict';
import type { Decision } from '../../src/domain/decision.ts';
import type { Delivery, Subscriber, SubscriberEvent } from '../../src/client/index.ts';
import { makeDecision } from '../helpers/decisions.ts';
import type { TestApp } from '../helpers/app.ts';

/** Far enough in the future that nothing expires during a test. */
export const FUTURE = '2099-01-01T00:00:00Z';

let seq = 0;
/** A name unique in this process. */
export const uniq = (p: string): string => `${p}-${process.pid}-${++seq}`;

/** A valid decision that does not expire. */
export function dec(i: number, o: Partial<Decision> = {}): Decision {
  return makeDecision(i, { expiresAt: FUTURE, ...o });
}

/** Publishes a batch; returns the positions. */
export async function publish(t: TestApp, ds: readonly unknown[]): Promise<string[]> {
  const r = await t.request('POST', '/v1/decisions', { body: ds });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.results as { position: string }[]).map((x) => x.position);
}

/** Creates a subscription (start latest, every decision topic unless given); returns its name. */
export async function createSub(
  t: TestApp,
  body: Record<string, unknown>,
  name = uniq('sub'),
): Promise<string> {
  const r = await t.request('POST', '/v1/subscriptions', {
    body: { name, topics: ['decisions.>'], start: 'latest', ...body },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return name;
}

/** The status block of a subscription. */
export async function status(t: TestApp, name: string): Promise<any> {
  const r = await t.request('GET', `/v1/subscriptions/${name}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.status;
}

/** One REST pull. */
export async function fetchOnce(t: TestApp, name: string, max = 100, waitMs = 200): Promise<Delivery[]> {
  const r = await t.request('POST', `/v1/subscriptions/${name}/fetch`, { body: { max, waitMs } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.deliveries;
}

/** Pulls until `n` deliveries came or `ms` passed. */
export async function fetchN(t: TestApp, name: string, n: number, ms = 10_000): Promise<Delivery[]> {
  const out: Delivery[] = [];
  const end = Date.now() + ms;
  while (out.length < n && Date.now() < end) out.push(...(await fetchOnce(t, name, n - out.length, 200)));
  return out;
}

/** REST acks. */
export async function ackPull(
  t: TestApp,
  name: string,
  positions: readonly unknown[],
  op: 'ack' | 'nack' = 'ack',
  extra: Record<string, unknown> = {},
): Promise<{ position: string; ok: boolean; code?: string }[]> {
  const r = await t.request('POST', `/v1/subscriptions/${name}/${op}`, { body: { positions, ...extra } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.results;
}

/** Waits until `cond` holds, checking every 20 ms, failing after `ms` with `what`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 15_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The next event of a subscriber that satisfies `pred` (others are kept in `skipped`). */
export async function nextEvent<T extends SubscriberEvent['type']>(
  s: Subscriber,
  type: T,
  ms = 10_000,
  skipped: SubscriberEvent[] = [],
): Promise<Extract<SubscriberEvent, { type: T }>> {
  const end = Date.now() + ms;
  for (;;) {
    const left = end - Date.now();
    if (left <= 0) throw new Error(`no ${type} event within ${ms} ms (saw ${JSON.stringify(skipped)})`);
    const e = await s.next(left);
    if (e === undefined) continue;
    if (e.type === type) return e as Extract<SubscriberEvent, { type: T }>;
    skipped.push(e);
  }
}

/** Deliveries from a subscriber until `n` came (other events kept in `skipped`). */
export async function deliveriesN(
  s: Subscriber,
  n: number,
  ms = 10_000,
  skipped: SubscriberEvent[] = [],
): Promise<Delivery[]> {
  const out: Delivery[] = [];
  const end = Date.now() + ms;
  while (out.length < n) {
    const e = await nextEvent(s, 'deliveries', Math.max(1, end - Date.now()), skipped);
    out.push(...e.deliveries);
  }
  return out;
}
