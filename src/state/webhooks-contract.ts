/**
 * The WebhookStore contract suite (STYLE habit 2): `node:test` cases every adapter passes unchanged.
 * Each case uses ids of its own, so the cases share one store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { WebhookRecord, WebhookStore } from './webhooks-port.ts';

/** What an adapter's `open` gives the suite. */
export interface WebhookContractSubject {
  readonly store: WebhookStore;
  /** Opens the same store again after the suite closed it. */
  readonly reopen?: () => Promise<WebhookStore>;
  readonly cleanup: () => Promise<void>;
}

/** A record with every field set; `over` replaces some. */
function rec(id: string, over: Partial<WebhookRecord> = {}): WebhookRecord {
  const at = new Date().toISOString();
  return {
    id,
    subscription: 'orders',
    url: 'https://hooks.example.com/cds?x=1',
    secret: `whsec_${randomBytes(32).toString('base64')}`,
    maxConcurrency: 4,
    timeoutMs: 5_000,
    batchSize: 50,
    backoff: { initialMs: 500, maxMs: 60_000 },
    disableAfter: { failures: 20, periodMs: 600_000 },
    state: 'active',
    createdBy: 'p-test',
    createdAt: at,
    updatedAt: at,
    ...over,
  };
}

/** Registers the contract cases for one adapter; `opts.skip` maps a case title to the reason it is skipped. */
export function webhookStoreContract(
  name: string,
  open: () => Promise<WebhookContractSubject>,
  opts: { skip?: Record<string, string> } = {},
): void {
  const skip = opts.skip ?? {};
  const test = (title: string, fn: () => Promise<void>): void => {
    const reason = skip[title];
    it(title, reason === undefined ? {} : { skip: reason }, fn);
  };
  describe(`WebhookStore contract: ${name}`, () => {
    let subject: WebhookContractSubject;
    let store: WebhookStore;
    before(async () => {
      subject = await open();
      store = subject.store;
    });
    after(async () => {
      await store?.close();
      await subject?.cleanup();
    });

    test('put then get gives the record back, secret and every field', async () => {
      const r = rec('wh_get1', { subscription: 'sub-é.1' });
      await store.put(r);
      assert.deepEqual(await store.get('wh_get1'), r);
      assert.equal(await store.get('wh_unknown'), undefined);
    });

    test('put replaces: disabled with a reason, then active again without it', async () => {
      const r = rec('wh_repl');
      await store.put(r);
      const disabled: WebhookRecord = {
        ...r,
        state: 'disabled',
        disabledAt: new Date().toISOString(),
        disabledReason: '20 consecutive failures over 600000 ms',
        updatedAt: new Date().toISOString(),
      };
      await store.put(disabled);
      assert.deepEqual(await store.get('wh_repl'), disabled);
      const { disabledAt: _a, disabledReason: _r, ...active } = disabled;
      const again: WebhookRecord = { ...active, state: 'active', secret: rec('x').secret };
      await store.put(again);
      const got = await store.get('wh_repl');
      assert.deepEqual(got, again);
      assert.equal(got !== undefined && 'disabledReason' in got, false);
    });

    test('list gives every endpoint in id order (byte order)', async () => {
      const ids = ['wh_L-b', 'wh_L_a', 'wh_LA', 'wh_La', 'wh_L0'];
      for (const id of ids) await store.put(rec(id, { subscription: `s-${id}` }));
      const listed = (await store.list()).map((r) => r.id).filter((id) => id.startsWith('wh_L'));
      assert.deepEqual(listed, [...ids].sort());
      const one = (await store.list()).find((r) => r.id === 'wh_La');
      assert.equal(one?.subscription, 's-wh_La');
    });

    test('delete removes it and says whether it existed', async () => {
      await store.put(rec('wh_del'));
      assert.equal(await store.delete('wh_del'), true);
      assert.equal(await store.get('wh_del'), undefined);
      assert.equal(
        (await store.list()).some((r) => r.id === 'wh_del'),
        false,
      );
      assert.equal(await store.delete('wh_del'), false);
    });

    test('writes are durable: a reopened store has them', async () => {
      if (subject.reopen === undefined) return;
      const kept = rec('wh_durable');
      await store.put(kept);
      await store.put(rec('wh_gone'));
      await store.delete('wh_gone');
      await store.close();
      await store.close(); // idempotent
      store = await subject.reopen();
      assert.deepEqual(await store.get('wh_durable'), kept);
      assert.equal(await store.get('wh_gone'), undefined);
    });
  });
}
