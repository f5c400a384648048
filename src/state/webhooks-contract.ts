/**
 * The WebhookStore contract suite (STYLE habit 2): `node:test` cases every adapter passes unchanged.
 * Each case uses ids of its own, so the cases share one c.store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { contractSuite, type ContractSubject } from './contract-suite.ts';
import type { WebhookRecord, WebhookStore } from './webhooks-port.ts';

/** What an adapter's `open` gives the suite. */
export type WebhookContractSubject = ContractSubject<WebhookStore>;

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
  contractSuite(`WebhookStore contract: ${name}`, open, opts.skip, (c) => {
    const { test } = c;

    test('put then get gives the record back, secret and every field', async () => {
      const r = rec('wh_get1', { subscription: 'sub-é.1' });
      await c.store.put(r);
      assert.deepEqual(await c.store.get('wh_get1'), r);
      assert.equal(await c.store.get('wh_unknown'), undefined);
    });

    test('put replaces: disabled with a reason, then active again without it', async () => {
      const r = rec('wh_repl');
      await c.store.put(r);
      const disabled: WebhookRecord = {
        ...r,
        state: 'disabled',
        disabledAt: new Date().toISOString(),
        disabledReason: '20 consecutive failures over 600000 ms',
        updatedAt: new Date().toISOString(),
      };
      await c.store.put(disabled);
      assert.deepEqual(await c.store.get('wh_repl'), disabled);
      const { disabledAt: _a, disabledReason: _r, ...active } = disabled;
      const again: WebhookRecord = { ...active, state: 'active', secret: rec('x').secret };
      await c.store.put(again);
      const got = await c.store.get('wh_repl');
      assert.deepEqual(got, again);
      assert.equal(got !== undefined && 'disabledReason' in got, false);
    });

    test('list gives every endpoint in id order (byte order)', async () => {
      const ids = ['wh_L-b', 'wh_L_a', 'wh_LA', 'wh_La', 'wh_L0'];
      for (const id of ids) await c.store.put(rec(id, { subscription: `s-${id}` }));
      const listed = (await c.store.list()).map((r) => r.id).filter((id) => id.startsWith('wh_L'));
      assert.deepEqual(listed, [...ids].sort());
      const one = (await c.store.list()).find((r) => r.id === 'wh_La');
      assert.equal(one?.subscription, 's-wh_La');
    });

    test('delete removes it and says whether it existed', async () => {
      await c.store.put(rec('wh_del'));
      assert.equal(await c.store.delete('wh_del'), true);
      assert.equal(await c.store.get('wh_del'), undefined);
      assert.equal(
        (await c.store.list()).some((r) => r.id === 'wh_del'),
        false,
      );
      assert.equal(await c.store.delete('wh_del'), false);
    });

    test('writes are durable: a reopened store has them', async () => {
      const kept = rec('wh_durable');
      await c.store.put(kept);
      await c.store.put(rec('wh_gone'));
      await c.store.delete('wh_gone');
      if (!(await c.reopen())) return;
      assert.deepEqual(await c.store.get('wh_durable'), kept);
      assert.equal(await c.store.get('wh_gone'), undefined);
    });
  });
}
