/**
 * The PostgreSQL WebhookStore passes the port's contract unchanged, against a real server; every
 * write notifies the change feed (kind webhook, never the secret), and a feed that reconnects reports
 * that any endpoint may have changed. Two service instances on one database: an endpoint registered
 * on one is used by the other, which dispatches its subscription, and its disable, re-enable and
 * deletion reach the other within a second.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import {
  PostgresChangeFeed,
  PostgresWebhookStore,
  type StateChange,
} from '../../src/adapters/postgres/index.ts';
import { webhookStoreContract } from '../../src/state/webhooks-contract.ts';
import type { WebhookRecord } from '../../src/state/webhooks-port.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { makeDecision } from '../helpers/decisions.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { within } from '../helpers/wait.ts';

const db = await startPostgres();
const db2 = 'skipped' in db ? db : await startPostgres();

/** A receiver that answers `status` and keeps the deliveries of the requests whose signature holds. */
class Receiver {
  server: Server | undefined;
  secret = '';
  status = 200;
  requests = 0;
  badSignatures = 0;
  readonly accepted: string[] = [];

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests++;
        const body = Buffer.concat(chunks).toString('utf8');
        const key = Buffer.from(this.secret.slice('whsec_'.length), 'base64');
        const signed = `${String(req.headers['webhook-id'])}.${String(req.headers['webhook-timestamp'])}.${body}`;
        const expected = `v1,${createHmac('sha256', key).update(signed).digest('base64')}`;
        if (!String(req.headers['webhook-signature']).split(' ').includes(expected)) this.badSignatures++;
        else if (this.status === 200) {
          const m = JSON.parse(body) as { data: { deliveries: { decision: { decisionId: string } }[] } };
          for (const d of m.data.deliveries) this.accepted.push(d.decision.decisionId);
        }
        res.writeHead(this.status).end();
      });
    });
    await new Promise<void>((r) => (this.server as Server).listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    s?.closeAllConnections();
    if (s !== undefined) await new Promise((r) => s.close(r));
  }
}

if ('skipped' in db || 'skipped' in db2) {
  it('WebhookStore: postgres', { skip: 'skipped' in db ? db.skipped : 'no server' }, () => {});
} else {
  const server = db as TestPostgres;
  webhookStoreContract('postgres', async () => ({
    store: await PostgresWebhookStore.open(server.url),
    reopen: () => PostgresWebhookStore.open(server.url),
    cleanup: () => server.stop(),
  }));

  const shared = db2 as TestPostgres;

  describe('WebhookStore on PostgreSQL: the change feed', () => {
    it('every write notifies (kind webhook, no secret); after a reconnect the feed reports webhook *', async () => {
      const store = await PostgresWebhookStore.open(shared.url);
      const feed = await PostgresChangeFeed.open(shared.url, { retryMs: 300 });
      const admin = new pg.Client({ connectionString: shared.url });
      await admin.connect();
      const heard: StateChange[] = [];
      const raw: string[] = [];
      const reading = (async () => {
        for await (const c of feed.changes()) heard.push(c);
      })();
      const watcher = new pg.Client({ connectionString: shared.url });
      await watcher.connect();
      watcher.on('notification', (m) => raw.push(m.payload ?? ''));
      await watcher.query('LISTEN cds_changes');
      const count = (id: string) => heard.filter((c) => c.kind === 'webhook' && c.name === id).length;
      try {
        const at = new Date().toISOString();
        const r: WebhookRecord = {
          id: 'wh_feed',
          subscription: 's',
          url: 'https://example.com/h',
          secret: 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAx',
          maxConcurrency: 1,
          timeoutMs: 1000,
          batchSize: 1,
          backoff: { initialMs: 100, maxMs: 1000 },
          disableAfter: { failures: 3, periodMs: 0 },
          state: 'active',
          createdBy: 'p',
          createdAt: at,
          updatedAt: at,
        };
        await store.put(r);
        await within(2000, 'create notified', () => count('wh_feed') === 1);
        await store.put({ ...r, state: 'disabled', disabledAt: at, disabledReason: 'x' });
        await within(2000, 'update notified', () => count('wh_feed') === 2);
        assert.equal(await store.delete('wh_feed'), true);
        await within(2000, 'delete notified', () => count('wh_feed') === 3);
        await within(2000, 'raw payloads', () => raw.length >= 3);
        assert.ok(
          raw.every((p) => !p.includes('whsec_')),
          raw.join('\n'),
        );
        await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cds-feed'",
        );
        await within(5000, 'disconnected', () => !feed.connected);
        await within(5000, 'reconnected', () => feed.connected);
        await within(5000, 'reported after reconnect', () =>
          heard.some((c) => c.kind === 'webhook' && c.name === '*'),
        );
      } finally {
        await feed.close();
        await reading;
        await watcher.end();
        await admin.end();
        await store.close();
      }
    });
  });

  describe('two instances on one database: a webhook endpoint registered on one is used by the other', () => {
    let a: TestApp;
    let b: TestApp;
    const receiver = new Receiver();
    let hookUrl = '';
    before(async () => {
      const overrides = {
        state: { engine: 'postgres' },
        postgres: { url: shared.url },
        cluster: { leaseMs: 3000, renewMs: 1000 },
      };
      a = await startTestApp(overrides);
      b = await startTestApp(overrides);
      hookUrl = await receiver.start();
    });
    after(async () => {
      await a?.close();
      await b?.close();
      await receiver.stop();
      await shared.stop();
    });

    it('registered on one instance, used by the one that dispatches the subscription; disable, re-enable and delete reach the other', async () => {
      const name = 'hooked';
      const s = await a.request('POST', '/v1/subscriptions', { body: { name, topics: ['decisions.>'] } });
      assert.equal(s.status, 201, JSON.stringify(s.body));
      // One instance takes its lease and dispatches it (ADR 0015); the endpoint is registered on the
      // other. Each instance has its own embedded log here, so decisions are published to the owner.
      let owner: TestApp | undefined;
      await within(5000, 'an owner', async () => {
        for (const t of [a, b])
          if ((await t.request('GET', `/v1/subscriptions/${name}`)).body.status?.owner?.here === true)
            owner = t;
        return owner !== undefined;
      });
      const dispatcher = owner as TestApp;
      const other = dispatcher === a ? b : a;
      const created = await other.request('POST', `/v1/subscriptions/${name}/webhooks`, {
        body: {
          url: hookUrl,
          batchSize: 10,
          backoff: { initialMs: 50, maxMs: 200 },
          disableAfter: { failures: 3, periodMs: 0 },
        },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      receiver.secret = created.body.secret as string;
      assert.match(receiver.secret, /^whsec_/);
      // The owner heard of it (one shared store, the change feed) and runs a dispatcher for it.
      const ms = await within(1000, 'the owner runs the endpoint', async () => {
        const g = await dispatcher.request('GET', `/v1/subscriptions/${name}/webhooks/${id}`);
        return g.status === 200 && g.body.health !== null;
      });
      assert.ok(ms < 1000);

      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const d = makeDecision(7_000 + i);
        ids.push(d.decisionId);
        const p = await dispatcher.request('POST', '/v1/decisions', { body: d });
        assert.ok(p.status === 200 || p.status === 201, JSON.stringify(p.body));
      }
      await within(5000, 'delivered by the owner to the endpoint registered on the other', () =>
        ids.every((x) => receiver.accepted.includes(x)),
      );
      assert.equal(receiver.badSignatures, 0, 'signed with the secret the other instance answered');

      // The endpoint fails on the owner until the owner disables it; the other sees it disabled.
      receiver.status = 500;
      const more = makeDecision(7_100);
      await dispatcher.request('POST', '/v1/decisions', { body: more });
      await within(10_000, 'disabled by the owner, seen on the other', async () => {
        const g = await other.request('GET', `/v1/subscriptions/${name}/webhooks/${id}`);
        return g.body.state === 'disabled';
      });
      // Re-enabled on the other: the owner's dispatcher runs again and delivers what was held.
      receiver.status = 200;
      const en = await other.request('POST', `/v1/subscriptions/${name}/webhooks/${id}/enable`);
      assert.equal(en.status, 200, JSON.stringify(en.body));
      await within(5000, 're-enabled on the other, delivered by the owner', () =>
        receiver.accepted.includes(more.decisionId),
      );

      // Deleted on the other: the owner stops dispatching it; later decisions are not sent.
      assert.equal((await other.request('DELETE', `/v1/subscriptions/${name}/webhooks/${id}`)).status, 204);
      assert.equal((await dispatcher.request('GET', `/v1/subscriptions/${name}/webhooks/${id}`)).status, 404);
      await new Promise((r) => setTimeout(r, 1000)); // the owner hears of it within a second
      const requests = receiver.requests;
      await dispatcher.request('POST', '/v1/decisions', { body: makeDecision(7_200) });
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(receiver.requests, requests, 'no request after the deletion');
    });
  });
}
