/**
 * The one configuration schema: every key, its type, its default and its CDS_* variable. The
 * README's configuration reference is this table; a test checks that it lists every key.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

const Port = (d: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: d, description });

/** The configuration of one cds process. */
export const ConfigSchema = Type.Object(
  {
    dataDir: Type.String({
      minLength: 1,
      default: './data',
      description: 'Directory of the embedded log, state and admin key.',
    }),
    http: Type.Object(
      {
        host: Type.String({ default: '127.0.0.1', description: 'Address the REST listener binds.' }),
        port: Port(8480, 'Port of the REST listener; 0 picks a free one (the start line says which).'),
        bodyLimitBytes: Type.Integer({
          minimum: 1024,
          default: 16 * 1024 * 1024,
          description: 'Largest request body.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    grpc: Type.Object(
      {
        host: Type.String({ default: '127.0.0.1', description: 'Address the gRPC listener binds.' }),
        port: Port(8481, 'Port of the gRPC listener; 0 picks a free one (the start line says which).'),
        tls: Type.Object(
          {
            certFile: Type.Optional(
              Type.String({
                minLength: 1,
                description:
                  'PEM certificate chain of the gRPC listener; with keyFile it serves TLS only (ADR 0012).',
              }),
            ),
            keyFile: Type.Optional(
              Type.String({ minLength: 1, description: 'PEM private key of grpc.tls.certFile.' }),
            ),
            caFile: Type.Optional(
              Type.String({
                minLength: 1,
                description: 'PEM CA bundle that client certificates must chain to (mTLS).',
              }),
            ),
            requireClientCert: Type.Boolean({
              default: false,
              description:
                'mTLS: refuse a connection without a client certificate signed by grpc.tls.caFile.',
            }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    log: Type.Object(
      {
        engine: Type.Union([Type.Literal('embedded'), Type.Literal('pulsar')], {
          default: 'embedded',
          description:
            'Where decisions are stored: embedded (local segment log) or pulsar (Apache Pulsar; with state.engine=postgres this is cluster mode).',
        }),
        segmentBytes: Type.Integer({
          minimum: 64 * 1024,
          default: 256 * 1024 * 1024,
          description: 'Size at which an embedded log segment rolls.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    state: Type.Object(
      {
        engine: Type.Union([Type.Literal('embedded'), Type.Literal('postgres')], {
          default: 'embedded',
          description:
            'Where state is kept: embedded (LMDB in the data directory) or postgres (cluster mode).',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    pulsar: Type.Object(
      {
        url: Type.Optional(
          Type.String({
            minLength: 1,
            description:
              "Pulsar broker's web service URL (http://host:8080) for log.engine=pulsar; the WebSocket and admin endpoints follow from it.",
          }),
        ),
        tenant: Type.String({
          minLength: 1,
          default: 'cds',
          description: 'Pulsar tenant of the log (created when missing).',
        }),
        namespace: Type.String({
          minLength: 1,
          default: 'cds',
          description:
            'Pulsar namespace of the log in pulsar.tenant (created when missing, with a 1-day retention).',
        }),
        topic: Type.String({
          minLength: 1,
          pattern: '^[A-Za-z0-9_.=-]+$',
          default: 'decisions',
          description:
            'Partitioned topic of the decisions; its commit records go to <topic>.commits (ADR 0016).',
        }),
        partitions: Type.Integer({
          minimum: 1,
          maximum: 1024,
          default: 4,
          description: 'Partitions of the topic when cds creates it (an existing topic keeps its own).',
        }),
        checkpointEvery: Type.Integer({
          minimum: 0,
          maximum: 1_000_000,
          default: 1000,
          description:
            'Commit records between two checkpoints of the log state (<topic>.checkpoints; a start reads from the last one). 0 writes none. Give every instance the same value (ADR 0016).',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    postgres: Type.Object(
      {
        url: Type.Optional(
          Type.String({
            minLength: 1,
            description:
              'PostgreSQL connection string (postgres://user:password@host:port/db) for state.engine=postgres.',
          }),
        ),
        poolSize: Type.Integer({
          minimum: 1,
          maximum: 200,
          default: 10,
          description: 'Connections in the PostgreSQL pool.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    cluster: Type.Object(
      {
        leaseMs: Type.Integer({
          minimum: 300,
          maximum: 600_000,
          default: 10_000,
          description:
            'Cluster mode (state.engine=postgres): how long a subscription lease lasts after each renewal; an instance that dies loses its subscriptions this long after its last renewal (ADR 0015).',
        }),
        renewMs: Type.Integer({
          minimum: 100,
          maximum: 200_000,
          default: 2_000,
          description:
            'How often an instance renews its leases and takes free ones; at most a third of cluster.leaseMs.',
        }),
        advertisedUrl: Type.Optional(
          Type.String({
            minLength: 1,
            description:
              'Base URL clients are redirected to for the subscriptions this instance dispatches (default: the HTTP listen address).',
          }),
        ),
        advertisedGrpc: Type.Optional(
          Type.String({
            minLength: 1,
            description: 'host:port gRPC clients are redirected to (default: the gRPC listen address).',
          }),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    ingest: Type.Object(
      {
        maxBatch: Type.Integer({
          minimum: 1,
          maximum: 100_000,
          default: 10_000,
          description: 'Most decisions in one publish batch.',
        }),
        topicTemplate: Type.String({
          minLength: 1,
          default: 'decisions.{instrument.assetClass}.{portfolioId}',
          description: 'Default topic of a decision; {field.path} is replaced by the field value.',
        }),
        keyField: Type.String({
          minLength: 1,
          default: 'portfolioId',
          description: 'Decision field that is the ordering key.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    security: Type.Object(
      {
        adminKey: Type.Optional(
          Type.String({
            minLength: 24,
            description: 'Admin API key to ensure exists (otherwise one is generated on first start).',
          }),
        ),
        jwtHs256SecretFile: Type.Optional(
          Type.String({ minLength: 1, description: 'File holding the HS256 secret for JWTs.' }),
        ),
        jwtPublicKeyFile: Type.Optional(
          Type.String({ minLength: 1, description: 'PEM public key (RS256 or EdDSA) for JWTs.' }),
        ),
        jwtJwksFile: Type.Optional(
          Type.String({ minLength: 1, description: 'JWKS file (JSON) of keys for JWTs.' }),
        ),
        jwtIssuer: Type.Optional(Type.String({ minLength: 1, description: 'Required `iss` of JWTs.' })),
        jwtAudience: Type.Optional(Type.String({ minLength: 1, description: 'Required `aud` of JWTs.' })),
        requestsPerSecond: Type.Number({
          exclusiveMinimum: 0,
          default: 2000,
          description: 'Default per-principal request rate limit.',
        }),
        decisionsPerSecond: Type.Number({
          exclusiveMinimum: 0,
          default: 1_000_000,
          description: 'Default per-principal published-decision rate limit.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    retention: Type.Object(
      {
        intervalMs: Type.Integer({
          minimum: 10,
          maximum: 86_400_000,
          default: 60_000,
          description:
            'How often retention policies are applied (ADR 0017); a run reads only what was appended since the last.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    ledger: Type.Object(
      {
        retentionMs: Type.Integer({
          minimum: 0,
          maximum: 10 * 365 * 86_400_000,
          default: 7 * 86_400_000,
          description:
            'Delivery ledger records (ADR 0011) committed longer ago than this are removed; 0 keeps them whatever their age.',
        }),
        maxRecords: Type.Optional(
          Type.Integer({
            minimum: 1,
            description:
              'At most this many ledger records are kept (the newest); the oldest beyond go at each run (default: no limit).',
          }),
        ),
        intervalMs: Type.Integer({
          minimum: 1_000,
          maximum: 86_400_000,
          default: 300_000,
          description: 'How often ledger.retentionMs and ledger.maxRecords are applied.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    shutdown: Type.Object(
      {
        drainTimeoutMs: Type.Integer({
          minimum: 0,
          default: 10_000,
          description: 'Longest wait for in-flight work on SIGTERM.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    logging: Type.Object(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
          { default: 'info', description: 'Level of the JSON logs on standard error.' },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
);

/** A validated, frozen configuration. */
export type Config = Static<typeof ConfigSchema>;

/** CDS_* environment variables and the key each sets. Any other CDS_* variable is an error. */
export const ENV_VARS: Readonly<Record<string, string>> = {
  CDS_DATA_DIR: 'dataDir',
  CDS_HTTP_HOST: 'http.host',
  CDS_HTTP_PORT: 'http.port',
  CDS_HTTP_BODY_LIMIT_BYTES: 'http.bodyLimitBytes',
  CDS_GRPC_HOST: 'grpc.host',
  CDS_GRPC_PORT: 'grpc.port',
  CDS_GRPC_TLS_CERT_FILE: 'grpc.tls.certFile',
  CDS_GRPC_TLS_KEY_FILE: 'grpc.tls.keyFile',
  CDS_GRPC_TLS_CA_FILE: 'grpc.tls.caFile',
  CDS_GRPC_TLS_REQUIRE_CLIENT_CERT: 'grpc.tls.requireClientCert',
  CDS_LOG: 'log.engine',
  CDS_LOG_SEGMENT_BYTES: 'log.segmentBytes',
  CDS_STATE: 'state.engine',
  CDS_PULSAR_URL: 'pulsar.url',
  CDS_PULSAR_TENANT: 'pulsar.tenant',
  CDS_PULSAR_NAMESPACE: 'pulsar.namespace',
  CDS_PULSAR_TOPIC: 'pulsar.topic',
  CDS_PULSAR_PARTITIONS: 'pulsar.partitions',
  CDS_PULSAR_CHECKPOINT_EVERY: 'pulsar.checkpointEvery',
  CDS_POSTGRES_URL: 'postgres.url',
  CDS_POSTGRES_POOL_SIZE: 'postgres.poolSize',
  CDS_LEASE_MS: 'cluster.leaseMs',
  CDS_LEASE_RENEW_MS: 'cluster.renewMs',
  CDS_ADVERTISED_URL: 'cluster.advertisedUrl',
  CDS_ADVERTISED_GRPC: 'cluster.advertisedGrpc',
  CDS_INGEST_MAX_BATCH: 'ingest.maxBatch',
  CDS_TOPIC_TEMPLATE: 'ingest.topicTemplate',
  CDS_KEY_FIELD: 'ingest.keyField',
  CDS_ADMIN_KEY: 'security.adminKey',
  CDS_JWT_HS256_SECRET_FILE: 'security.jwtHs256SecretFile',
  CDS_JWT_PUBLIC_KEY_FILE: 'security.jwtPublicKeyFile',
  CDS_JWT_JWKS_FILE: 'security.jwtJwksFile',
  CDS_JWT_ISSUER: 'security.jwtIssuer',
  CDS_JWT_AUDIENCE: 'security.jwtAudience',
  CDS_RATE_REQUESTS_PER_SECOND: 'security.requestsPerSecond',
  CDS_RATE_DECISIONS_PER_SECOND: 'security.decisionsPerSecond',
  CDS_RETENTION_INTERVAL_MS: 'retention.intervalMs',
  CDS_LEDGER_RETENTION_MS: 'ledger.retentionMs',
  CDS_LEDGER_MAX_RECORDS: 'ledger.maxRecords',
  CDS_LEDGER_INTERVAL_MS: 'ledger.intervalMs',
  CDS_DRAIN_TIMEOUT_MS: 'shutdown.drainTimeoutMs',
  CDS_LOG_LEVEL: 'logging.level',
};

/**
 * CDS_* variables that are not configuration keys of the service: the file to read, and the address
 * and key that client commands (`cds publish`, `cds get`, ...) use.
 */
export const ENV_NON_KEYS = new Set(['CDS_CONFIG', 'CDS_URL', 'CDS_API_KEY']);
/** Prefix reserved for the test harness; such variables are not configuration. */
export const ENV_TEST_PREFIX = 'CDS_TEST_';

/** The schema of one key given by its dotted path, or undefined if there is no such key. */
export function schemaAt(path: string): TSchema | undefined {
  let s: TSchema | undefined = ConfigSchema;
  for (const part of path.split('.')) {
    const props: Record<string, TSchema> | undefined = (
      s as { properties?: Record<string, TSchema> } | undefined
    )?.properties;
    s = props?.[part];
    if (s === undefined) return undefined;
  }
  return s;
}
