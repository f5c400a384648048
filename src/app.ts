/**
 * The composition root: the only place that picks concrete adapters. It opens the log and the state
 * store, recovers (the index catches up with the log), builds the services and the REST server, and
 * owns the shutdown sequence. Nothing listens until `listen()`.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { AppContext, Lifecycle } from './app-context.ts';
import { SegmentLog } from './adapters/embedded/log/index.ts';
import { PulsarLog, WsPulsarClient, type PulsarAdmin } from './adapters/pulsar/index.ts';
import { LmdbStateStore } from './adapters/embedded/state/index.ts';
import {
  PostgresChangeFeed,
  PostgresLedgerStore,
  PostgresRetentionStore,
  PostgresRuleStore,
  PostgresStateStore,
  PostgresSubscriptionStore,
  PostgresWebhookStore,
} from './adapters/postgres/index.ts';
import { LmdbSubscriptionStore } from './adapters/embedded/subscriptions/index.ts';
import { LmdbWebhookStore } from './adapters/embedded/webhooks/index.ts';
import type { Config } from './config/index.ts';
import { CdsError } from './errors/index.ts';
import { Publisher } from './ingest/publisher.ts';
import type { EventLog } from './log/index.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import { compileTemplate } from './routing/template.ts';
import { RuleSetService } from './routing/service.ts';
import { LmdbRuleStore } from './adapters/embedded/rules/index.ts';
import { AuditTrail, Authenticator, JwtVerifier, PrincipalService, RateLimiter } from './security/index.ts';
import type { StateStore } from './state/index.ts';
import { StatusTracker } from './status.ts';
import { DeliveryEngine } from './delivery/index.ts';
import { DeliveryIntrospect } from './delivery/introspect.ts';
import {
  LedgerPruneMetrics,
  LedgerPruner,
  LedgerRecorder,
  LedgerService,
  LmdbLedgerStore,
} from './ledger/index.ts';
import { SubscriptionService } from './subscriptions/index.ts';
import { buildRestServer } from './transports/rest/server.ts';
import { buildGrpcServer, type GrpcServer } from './transports/grpc/index.ts';
import { WebhookService } from './transports/webhook/service.ts';
import { ClusterCoordinator, newMemberId, RetentionPin, type PinTarget } from './cluster/index.ts';
import { PostgresLeaseStore } from './adapters/postgres/lease-store.ts';
import { PostgresReservationStore } from './adapters/postgres/reservation-store.ts';
import { LmdbRetentionStore } from './adapters/embedded/retention/index.ts';
import { RetentionMetrics, RetentionService } from './retention/index.ts';
import { BackupService } from './backup/index.ts';
import { asEmbedded, embeddedBackupParts } from './embedded-stores.ts';

/** A built application: its services, its REST server, and its lifecycle. */
export interface App {
  readonly ctx: AppContext;
  readonly http: FastifyInstance;
  /** The gRPC server (ADR 0012); it listens from `listen()` on. */
  readonly grpc: GrpcServer;
  /** Binds the listeners; returns the addresses for the start line. */
  listen(): Promise<{ http: string; grpc: string }>;
  /** Graceful shutdown (DESIGN 5): refuse new work, finish in-flight publishes, flush, close. */
  close(): Promise<void>;
  /** Secret of a generated admin key, when this start generated one (print it once). */
  readonly generatedAdminKey?: { key: string; file: string };
}

async function openAdapters(
  config: Config,
  dataDir: string,
  given: EventLog | undefined,
): Promise<{ log: EventLog; state: StateStore }> {
  if (config.log.engine === 'pulsar' && config.pulsar.url === undefined && given === undefined) {
    throw new CdsError('CONFIG_INVALID', 'log.engine is pulsar but pulsar.url (CDS_PULSAR_URL) is not set', {
      details: {
        errors: [{ path: 'pulsar.url', code: 'required', message: 'required when log.engine is pulsar' }],
      },
    });
  }
  if (config.state.engine === 'postgres' && config.postgres.url === undefined) {
    throw new CdsError(
      'CONFIG_INVALID',
      'state.engine is postgres but postgres.url (CDS_POSTGRES_URL) is not set',
      {
        details: {
          errors: [
            { path: 'postgres.url', code: 'required', message: 'required when state.engine is postgres' },
          ],
        },
      },
    );
  }
  const log =
    given ??
    (config.log.engine === 'pulsar'
      ? await PulsarLog.open({
          url: config.pulsar.url as string,
          tenant: config.pulsar.tenant,
          namespace: config.pulsar.namespace,
          topic: config.pulsar.topic,
          partitions: config.pulsar.partitions,
          checkpointEvery: config.pulsar.checkpointEvery,
        })
      : await SegmentLog.open(join(dataDir, 'log'), { segmentBytes: config.log.segmentBytes }));
  try {
    const state =
      config.state.engine === 'postgres'
        ? await PostgresStateStore.open(config.postgres.url as string, {
            poolSize: config.postgres.poolSize,
            applicationName: 'cds',
          })
        : await LmdbStateStore.open(dataDir);
    return { log, state };
  } catch (e) {
    await log.close();
    throw e;
  }
}

/** A listen address as others can reach it: a wildcard host becomes this machine's name. */
function reachable(address: string): string {
  return address.replace(/^(https?:\/\/)?(0\.0\.0\.0|\[::\]|::)(?=:\d+$)/, (_m, scheme?: string) => {
    return `${scheme ?? ''}${hostname()}`;
  });
}

/** The durable Pulsar subscription that keeps what the slowest committed cds cursor needs (ADR 0015). */
const CURSOR_PIN_SUBSCRIPTION = 'cds-cursors';

/** The retention pin on Pulsar: `cds-cursors` on each partition topic, at the record of an offset. */
function pulsarPin(log: PulsarLog, admin: PulsarAdmin): PinTarget {
  return {
    partitions: log.partitions,
    next: (p) => log.extents()[p]?.next ?? 0,
    pin: async (p, offset) => {
      const topic = log.topics.partitions[p] as string;
      // At the tail there is no record yet: keep the last one (one record more than needed).
      const at = log.messageIdAt(p, offset) ?? log.messageIdAt(p, offset - 1);
      // Nothing held in this partition yet: the pin exists, at the start, and moves with the first cursor.
      if (at === undefined) return void (await admin.createSubscription(topic, CURSOR_PIN_SUBSCRIPTION));
      if (!(await admin.createSubscription(topic, CURSOR_PIN_SUBSCRIPTION, at)))
        await admin.resetCursor(topic, CURSOR_PIN_SUBSCRIPTION, at);
    },
  };
}

/** Builds the application from a validated configuration. */
export async function buildApp(
  config: Config,
  opts: {
    logger?: Logger;
    /** A log opened by the caller instead of the configured one (tests: instances sharing one log); closed by the app. */
    log?: EventLog;
  } = {},
): Promise<App> {
  const logger = opts.logger ?? createLogger(config.logging.level);
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  compileTemplate(config.ingest.topicTemplate, 'ingest.topicTemplate'); // a bad template fails the start
  const jwt = new JwtVerifier({
    ...(config.security.jwtHs256SecretFile ? { hs256SecretFile: config.security.jwtHs256SecretFile } : {}),
    ...(config.security.jwtPublicKeyFile ? { publicKeyFile: config.security.jwtPublicKeyFile } : {}),
    ...(config.security.jwtJwksFile ? { jwksFile: config.security.jwtJwksFile } : {}),
    ...(config.security.jwtIssuer ? { issuer: config.security.jwtIssuer } : {}),
    ...(config.security.jwtAudience ? { audience: config.security.jwtAudience } : {}),
  });
  // What start-up has opened, closed in reverse if a later step fails (no lock or handle left behind).
  const opened: (() => Promise<unknown>)[] = [];
  const compose = async (): Promise<App> => {
    const { log, state } = await openAdapters(config, dataDir, opts.log);
    opened.push(
      () => log.close(),
      () => state.close(),
    );
    const onError = (e: unknown) => logger.error({ err: e }, 'background failure');
    const lifecycle: Lifecycle = { ready: false, draining: false };
    const metrics = new Metrics();
    const audit = new AuditTrail(state.audit, onError);
    const ruleStore =
      config.state.engine === 'postgres'
        ? await PostgresRuleStore.open(config.postgres.url as string, { applicationName: 'cds' })
        : LmdbRuleStore.open(dataDir);
    opened.push(() => ruleStore.close());
    const rules = await RuleSetService.open(ruleStore, audit, {
      topicTemplate: config.ingest.topicTemplate,
      keyField: config.ingest.keyField,
    });
    // Cluster mode (ADR 0015): this instance's member id, and the reservations of the revisions it
    // appends (idempotent publish across instances); a dead instance's are settled after a grace.
    const memberId = newMemberId();
    const reservations =
      config.state.engine === 'postgres'
        ? await PostgresReservationStore.open(config.postgres.url as string, {
            applicationName: 'cds-reservations',
          })
        : undefined;
    opened.push(async () => reservations?.close());
    const reservationGraceMs = Math.max(60_000, 6 * config.cluster.leaseMs);
    const publisher = new Publisher(log, state.decisions, () => rules.router(), {
      maxBatch: config.ingest.maxBatch,
      onError,
      ...(reservations === undefined
        ? {}
        : { cluster: { store: reservations, owner: memberId, graceMs: reservationGraceMs } }),
    });
    const auth = new Authenticator(state.principals, jwt.enabled ? jwt : undefined);
    const principals = new PrincipalService(state.principals, state.meta, audit, auth);
    const status = new StatusTracker(publisher.counters);
    let cursorSecret = await state.meta.get('cursor.secret');
    if (cursorSecret === undefined) {
      cursorSecret = randomBytes(32).toString('base64url');
      await state.meta.set('cursor.secret', cursorSecret);
    }
    const subscriptionStore =
      config.state.engine === 'postgres'
        ? await PostgresSubscriptionStore.open(config.postgres.url as string, { applicationName: 'cds' })
        : LmdbSubscriptionStore.open(dataDir);
    opened.push(() => subscriptionStore.close());
    // Cluster mode: changes other instances make, heard from here on (LISTEN before the loads below).
    const feed =
      config.state.engine === 'postgres'
        ? await PostgresChangeFeed.open(config.postgres.url as string, { onError })
        : undefined;
    opened.push(async () => feed?.close());
    // A rule set activated between RuleSetService.open above and the LISTEN: read the pointer again.
    if (feed !== undefined) await rules.reload();
    // Cluster mode: one ledger for every instance, whichever dispatches a subscription (ADR 0006).
    const ledgerStore =
      config.state.engine === 'postgres'
        ? await PostgresLedgerStore.open(config.postgres.url as string, { applicationName: 'cds-ledger' })
        : LmdbLedgerStore.open(dataDir);
    opened.push(() => ledgerStore.close());
    // Cluster mode (ADR 0015): with state in PostgreSQL each subscription is dispatched by one instance,
    // under a lease whose token fences its cursor commits.
    const leaseStore =
      config.state.engine === 'postgres'
        ? await PostgresLeaseStore.open(config.postgres.url as string, { applicationName: 'cds-leases' })
        : undefined;
    opened.push(async () => leaseStore?.close());
    const coordinator =
      leaseStore === undefined
        ? undefined
        : new ClusterCoordinator(leaseStore, {
            id: memberId,
            leaseMs: config.cluster.leaseMs,
            renewMs: config.cluster.renewMs,
            address: {
              ...(config.cluster.advertisedUrl ? { url: config.cluster.advertisedUrl } : {}),
              ...(config.cluster.advertisedGrpc ? { grpc: config.cluster.advertisedGrpc } : {}),
            },
            onError,
          });
    const engine = new DeliveryEngine(log, subscriptionStore, {
      onError,
      // Cursor commits start only after the engine is started below, when ledgerRecorder exists.
      onCommit: (cursors, at) => ledgerRecorder.onCommit(cursors, at),
      onFenced: (names) => coordinator?.fenced(names),
    });
    const deliveries = new DeliveryIntrospect(engine, log);
    const ledgerRecorder = new LedgerRecorder(ledgerStore, deliveries, onError);
    for (const r of await subscriptionStore.list())
      ledgerRecorder.seed(r.name, await subscriptionStore.loadCursors(r.name));
    const subscriptions = await SubscriptionService.open(subscriptionStore, engine, audit, coordinator);
    opened.push(() => subscriptions.close());
    if (coordinator !== undefined) {
      opened.push(() => coordinator.close());
      await coordinator.start(subscriptions, engine);
    }
    // DESIGN 6: on Pulsar, a durable subscription per partition stays at the slowest committed cursor.
    const pinClient =
      coordinator !== undefined && log instanceof PulsarLog
        ? new WsPulsarClient(config.pulsar.url as string)
        : undefined;
    opened.push(async () => pinClient?.close());
    const pin =
      pinClient === undefined || !(log instanceof PulsarLog)
        ? undefined
        : new RetentionPin(subscriptionStore, pulsarPin(log, pinClient.admin), onError);
    if (pin !== undefined) {
      opened.push(() => pin.stop());
      pin.start(5 * config.cluster.renewMs);
    }
    // The retention service is built below; changes heard before that are read by its open().
    const retentionRef: { current?: RetentionService } = {};
    const webhooksRef: { current?: WebhookService } = {};
    const feedDone = (async () => {
      if (feed === undefined) return;
      for await (const c of feed.changes()) {
        if (c.kind === 'principal') auth.invalidate();
        else if (c.kind === 'rules') await rules.reload().catch(onError);
        else if (c.kind === 'retention') await retentionRef.current?.reload().catch(onError);
        else if (c.kind === 'webhook') await webhooksRef.current?.reload(c.name).catch(onError);
        else await subscriptions.reload(c.name).catch(onError);
      }
    })();
    deliveries.start();
    metrics.setSubscriptionSource(() => deliveries.samples());
    // In cluster mode the ledger answers for every instance's subscriptions (the shared store).
    const ledger = new LedgerService(
      ledgerStore,
      deliveries,
      subscriptionStore,
      200,
      () => ledgerRecorder.flushed(),
      coordinator !== undefined,
    );
    // The ledger's own retention (ADR 0011), on its timer from the start on (below).
    const ledgerPruner = new LedgerPruner(
      ledgerStore,
      config.ledger,
      new LedgerPruneMetrics(metrics.registry),
      onError,
    );
    opened.push(() => ledgerPruner.stop());
    // Cluster mode: endpoints shared by every instance; a change on one reaches the others' feeds.
    const webhookStore =
      config.state.engine === 'postgres'
        ? await PostgresWebhookStore.open(config.postgres.url as string, { applicationName: 'cds' })
        : LmdbWebhookStore.open(dataDir);
    opened.push(() => webhookStore.close());
    const webhooks = new WebhookService(webhookStore, subscriptions, audit, logger);
    webhooksRef.current = webhooks;
    const retentionStore =
      config.state.engine === 'postgres'
        ? await PostgresRetentionStore.open(config.postgres.url as string, { applicationName: 'cds' })
        : LmdbRetentionStore.open(dataDir);
    opened.push(() => retentionStore.close());
    const retention = await RetentionService.open({
      log,
      index: state.decisions,
      store: retentionStore,
      engine,
      subscriptions: subscriptionStore,
      // Cluster mode: subscriptions dispatched by other instances hold the shared log too (ADR 0017).
      cluster: coordinator !== undefined,
      ledger,
      audit,
      metrics: new RetentionMetrics(metrics.registry),
      onError,
      intervalMs: config.retention.intervalMs,
    });
    opened.push(() => retention.stop());
    retentionRef.current = retention;
    const embedded = asEmbedded({
      state,
      subscriptions: subscriptionStore,
      rules: ruleStore,
      webhooks: webhookStore,
      ledger: ledgerStore,
      retention: retentionStore,
    });
    const backupParts =
      log instanceof SegmentLog && embedded !== undefined
        ? embeddedBackupParts(dataDir, log, embedded)
        : undefined;
    const backups = new BackupService(backupParts, audit);
    const ctx: AppContext = {
      config,
      logger,
      metrics,
      log,
      state,
      publisher,
      auth,
      limiter: new RateLimiter(config.security),
      audit,
      principals,
      status,
      lifecycle,
      cursorSecret,
      subscriptions,
      deliveries,
      ledger,
      webhooks,
      rules,
      retention,
      backups,
    };

    const t0 = performance.now();
    const reindexed = await publisher.indexer.catchUp(log);
    // DESIGN 6: reservations of instances that died are reconciled at start, and then now and again.
    const reconciled = await publisher.reconcile();
    const reconciling = setInterval(
      () => void publisher.reconcile().catch(onError),
      reservationGraceMs,
    ).unref();
    const boot = await principals.bootstrap(dataDir, config.security.adminKey);
    logger.info(
      {
        reindexed,
        reconciled,
        ms: Math.round(performance.now() - t0),
        epoch: log.epoch,
        extents: log.extents(),
      },
      'recovered',
    );
    const http = await buildRestServer(ctx);
    const grpc = buildGrpcServer(ctx);
    await webhooks.start();
    status.start();
    retention.start();
    ledgerPruner.start();

    let closing: Promise<void> | undefined;
    return {
      ctx,
      http,
      grpc,
      ...(boot.generated && boot.file ? { generatedAdminKey: { key: boot.generated, file: boot.file } } : {}),
      async listen() {
        const address = await http.listen({ host: config.http.host, port: config.http.port });
        const grpcAddress = await grpc.listen(config.grpc.host, config.grpc.port);
        coordinator?.advertise({
          url: config.cluster.advertisedUrl ?? reachable(address),
          grpc: config.cluster.advertisedGrpc ?? reachable(grpcAddress),
        });
        lifecycle.ready = true;
        return { http: address, grpc: grpcAddress };
      },
      close() {
        closing ??= (async () => {
          lifecycle.draining = true;
          lifecycle.ready = false;
          coordinator?.stopTaking();
          clearInterval(reconciling);
          grpc.drain();
          const deadline = new Promise<'timeout'>((r) =>
            setTimeout(() => r('timeout'), config.shutdown.drainTimeoutMs).unref(),
          );
          const drained = await Promise.race([publisher.drain().then(() => 'ok' as const), deadline]);
          if (drained === 'timeout')
            logger.warn(
              'drain timed out; closing with publishes still in flight (they were not acknowledged)',
            );
          await backups.idle(); // a backup being written finishes before its sources close
          await feed?.close();
          await feedDone;
          await retention.stop(); // a run in progress completes (its trim is never cut halfway)
          await ledgerPruner.stop();
          await grpc.close(); // streams end with SHUTTING_DOWN; their consumers detach before the last commit
          await webhooks.close(); // before the engine's last commit, so their acks are in it
          await subscriptions.close();
          await coordinator?.close(); // after the last commit: successors take the leases from it
          await pin?.stop();
          await pinClient?.close();
          deliveries.stop();
          await ledgerRecorder.flushed();
          await audit.drain();
          status.stop();
          await http.close();
          await subscriptionStore.close();
          await leaseStore?.close();
          await reservations?.close();
          await ledgerStore.close();
          await webhookStore.close();
          await ruleStore.close();
          await log.close();
          await state.close();
          logger.info('closed');
        })();
        return closing;
      },
    };
  };
  try {
    return await compose();
  } catch (e) {
    for (const close of opened.reverse()) await close().catch(() => undefined);
    throw e;
  }
}
