/**
 * The OpenAPI 3.1 document, generated from the same TypeBox schemas that validate requests, so the
 * published contract cannot drift from what the service checks.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { DecisionSchema } from '../../domain/decision.ts';
import { ERROR_CODES } from '../../errors/index.ts';

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ 'application/json': { schema } });
const plain = (s: TSchema): unknown => JSON.parse(JSON.stringify(s)) as unknown;

const FieldError = Type.Object({ path: Type.String(), code: Type.String(), message: Type.String() });
const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.Union(Object.keys(ERROR_CODES).map((c) => Type.Literal(c))),
    message: Type.String(),
    retriable: Type.Boolean(),
    details: Type.Optional(
      Type.Object({ errors: Type.Optional(Type.Array(FieldError)) }, { additionalProperties: true }),
    ),
  }),
});
const PublishResult = Type.Object({
  decisionId: Type.String(),
  revision: Type.Integer(),
  position: Type.String({ description: 'Opaque; ordered within a partition.' }),
  epoch: Type.String(),
  topics: Type.Array(Type.String()),
  duplicate: Type.Boolean(),
  dropped: Type.Optional(
    Type.Literal(true, { description: 'A rule dropped it: stored with no topics, delivered to nobody.' }),
  ),
  quarantined: Type.Optional(
    Type.Literal(true, { description: 'A rule quarantined it: its one topic is the quarantine topic.' }),
  ),
});
const RuleSet = Type.Object(
  {
    rules: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          condition: Type.String({ description: 'CEL over `decision`.' }),
          topics: Type.Optional(Type.Array(Type.String(), { minItems: 1, description: 'Topic templates.' })),
          actions: Type.Optional(
            Type.Object(
              {
                setPriority: Type.Optional(Type.Integer({ minimum: 0, maximum: 9 })),
                setKey: Type.Optional(Type.String()),
                drop: Type.Optional(Type.Boolean()),
                quarantine: Type.Optional(Type.String()),
                holdUntil: Type.Optional(Type.String({ format: 'date-time' })),
                delayMs: Type.Optional(Type.Integer({ minimum: 0 })),
              },
              { additionalProperties: false },
            ),
          ),
          stop: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    defaultRoute: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
const StoredDecision = Type.Object({
  decisionId: Type.String(),
  revision: Type.Integer(),
  position: Type.String(),
  epoch: Type.String(),
  key: Type.String(),
  topics: Type.Array(Type.String()),
  priority: Type.Integer(),
  receivedAt: Type.String({ format: 'date-time' }),
  decision: Type.Unsafe(ref('Decision')),
});

const HistoryLine = Type.Composite([
  StoredDecision,
  Type.Object({
    expired: Type.Optional(
      Type.Literal(true, { description: 'Past its expiresAt when the request arrived.' }),
    ),
  }),
]);

const errors = (...codes: number[]) =>
  Object.fromEntries(
    codes.map((c) => [String(c), { description: `Error (see docs/errors.md)`, content: json(ref('Error')) }]),
  );
const q = (name: string, description: string, schema: unknown = { type: 'string' }) => ({
  name,
  in: 'query',
  required: false,
  description,
  schema,
});

/** The OpenAPI document served at /openapi.json. */
export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'cds: Coordination Distribution Service',
      version: '0.1.0',
      description: 'Durable, ordered distribution of coordinated trading decisions.',
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'API key or JWT' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
      schemas: {
        Decision: plain(DecisionSchema),
        Error: plain(ErrorBody),
        PublishResult: plain(PublishResult),
        StoredDecision: plain(StoredDecision),
        HistoryLine: plain(HistoryLine),
        RuleSet: plain(RuleSet),
      },
    },
    security: [{ bearer: [] }, { apiKey: [] }],
    paths: {
      '/v1/decisions': {
        post: {
          summary: 'Publish one decision, or an atomic batch (a JSON array, up to ingest.maxBatch).',
          requestBody: {
            required: true,
            content: json({ oneOf: [ref('Decision'), { type: 'array', items: ref('Decision') }] }),
          },
          responses: {
            '200': {
              description: 'Stored durably (or a duplicate).',
              content: json({
                oneOf: [
                  ref('PublishResult'),
                  { type: 'object', properties: { results: { type: 'array', items: ref('PublishResult') } } },
                ],
              }),
            },
            ...errors(400, 401, 403, 409, 413, 415, 429, 503),
          },
        },
        get: {
          summary: 'Query decisions with filters and cursor pagination (receivedAt order).',
          parameters: [
            q('portfolioId', 'equal to'),
            q('strategyId', 'equal to'),
            q('symbol', 'instrument.symbol equal to'),
            q('assetClass', 'instrument.assetClass equal to'),
            q('type', 'equal to'),
            q('verdict', 'policy.verdict equal to'),
            q('minPriority', '>=', { type: 'integer', minimum: 0, maximum: 9 }),
            q('maxPriority', '<=', { type: 'integer', minimum: 0, maximum: 9 }),
            q('from', 'receivedAt >= (RFC 3339)'),
            q('to', 'receivedAt < (RFC 3339)'),
            q('topic', 'a topic pattern one of its topics matches'),
            q('revisions', 'latest (default) or all', { enum: ['latest', 'all'] }),
            q('order', 'asc (default) or desc', { enum: ['asc', 'desc'] }),
            q('limit', 'page size, 1-1000 (default 100)', { type: 'integer', minimum: 1, maximum: 1000 }),
            q('cursor', 'nextCursor of the previous page'),
          ],
          responses: {
            '200': {
              description: 'A page.',
              content: json({
                type: 'object',
                properties: {
                  items: { type: 'array', items: ref('StoredDecision') },
                  nextCursor: { type: ['string', 'null'] },
                },
              }),
            },
            ...errors(400, 401, 403, 429, 503),
          },
        },
      },
      '/v1/decisions/{decisionId}': {
        get: {
          summary: 'The latest revision of a decision, or ?revision=N.',
          parameters: [
            { name: 'decisionId', in: 'path', required: true, schema: { type: 'string' } },
            q('revision', 'a stored revision', { type: 'integer', minimum: 1 }),
          ],
          responses: {
            '200': { description: 'Found.', content: json(ref('StoredDecision')) },
            ...errors(400, 401, 403, 404),
          },
        },
      },
      '/v1/topics/{topic}/decisions': {
        get: {
          summary:
            'Historical retrieval (ADR 0019): the stored decisions on a topic or pattern between two positions or times, in log order, streamed as NDJSON with backpressure; expired ones marked `expired: true` (subscribe scope; results limited to what the caller may see, as the query).',
          parameters: [
            {
              name: 'topic',
              in: 'path',
              required: true,
              description: 'A topic, or a pattern with `*` and `>` (URL-encoded: `decisions.%3E`).',
              schema: { type: 'string' },
            },
            q(
              'from',
              'Inclusive start: a position `P:O` (or one per partition, comma-separated) or an RFC 3339 time (receivedAt); default the first held record. A time before it starts there; a trimmed position is 410 POSITION_TRIMMED.',
            ),
            q(
              'to',
              'Exclusive end, as from; default the end of the log when the request arrives (the stream ends; it does not follow the tail).',
            ),
            q('epoch', 'The epoch the positions belong to; another epoch is 409 EPOCH_MISMATCH.'),
          ],
          responses: {
            '200': {
              description:
                'One HistoryLine per line. Headers x-cds-epoch, x-cds-from and x-cds-to give the resolved range. A failure after the first line ends the stream with one line `{"error": {...}}`.',
              content: { 'application/x-ndjson': { schema: ref('HistoryLine') } },
            },
            ...errors(400, 401, 403, 404, 409, 410, 429, 503),
          },
        },
      },
      '/v1/topics/{topic}/latest': {
        get: {
          summary:
            'The latest-revision view (ADR 0019): of each decision, its last revision stored on the topic, in log order, with the positions the view is current at (a resume token: start a subscription there to follow live).',
          parameters: [
            { name: 'topic', in: 'path', required: true, schema: { type: 'string' } },
            q('excludeCancelled', 'Leave out decisions whose latest revision is a cancel.', {
              type: 'boolean',
            }),
            q('excludeExpired', 'Leave out decisions past their expiresAt.', { type: 'boolean' }),
          ],
          responses: {
            '200': {
              description:
                'A JSON document { epoch, positions, items, count }, streamed; with `Accept: application/x-ndjson` the items as NDJSON and the positions in the x-cds-positions header.',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      epoch: { type: 'string' },
                      positions: { type: 'array', items: { type: 'string' } },
                      items: { type: 'array', items: ref('HistoryLine') },
                      count: { type: 'integer' },
                    },
                  },
                },
                'application/x-ndjson': { schema: ref('HistoryLine') },
              },
            },
            ...errors(400, 401, 403, 404, 429, 503),
          },
        },
      },
      '/v1/status': {
        get: {
          summary: 'Live status: rates, totals, log positions.',
          responses: { '200': { description: 'Status.' }, ...errors(401) },
        },
      },
      '/v1/subscriptions/{name}/events': {
        get: {
          summary:
            'Server-Sent Events (ADR 0010): `deliveries` events (id = last position of the batch, data = JSON array of deliveries), heartbeat comments; send Last-Event-ID to resume; ack with POST .../ack.',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } },
            q('credits', 'Credit window in deliveries (1-10000, default 256).', { type: 'integer' }),
            q('heartbeatMs', 'Heartbeat comment interval (200-300000, default 15000).', { type: 'integer' }),
          ],
          responses: {
            '200': {
              description: 'The event stream.',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
            ...errors(400, 401, 403, 404, 406),
          },
        },
      },
      '/v1/subscriptions/{name}/webhooks': {
        get: {
          summary: 'Webhook endpoints of a subscription with their health (subscribe).',
          parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'Endpoints.' }, ...errors(401, 403, 404) },
        },
        post: {
          summary:
            'Register a webhook endpoint (admin on the subscription topics); a generated secret is returned once (ADR 0010).',
          parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['url'],
              additionalProperties: false,
              properties: {
                url: { type: 'string', format: 'uri', description: 'http or https' },
                secret: { type: 'string', description: 'whsec_ + base64 of 24-64 bytes' },
                maxConcurrency: { type: 'integer', minimum: 1, maximum: 64, default: 4 },
                timeoutMs: { type: 'integer', minimum: 100, maximum: 120000, default: 10000 },
                batchSize: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
                backoff: {
                  type: 'object',
                  properties: { initialMs: { type: 'integer' }, maxMs: { type: 'integer' } },
                },
                disableAfter: {
                  type: 'object',
                  properties: { failures: { type: 'integer' }, periodMs: { type: 'integer' } },
                },
              },
            }),
          },
          responses: { '201': { description: 'Registered.' }, ...errors(400, 401, 403, 404) },
        },
      },
      '/v1/subscriptions/{name}/webhooks/{id}': {
        get: {
          summary: 'One webhook endpoint with its health.',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
          ],
          responses: { '200': { description: 'Endpoint.' }, ...errors(401, 403, 404) },
        },
        delete: {
          summary: 'Remove a webhook endpoint.',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
          ],
          responses: { '204': { description: 'Removed.' }, ...errors(401, 403, 404) },
        },
      },
      '/v1/subscriptions/{name}/webhooks/{id}/enable': {
        post: {
          summary: 'Re-enable a disabled webhook endpoint (its failure streak starts over).',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
          ],
          responses: { '200': { description: 'Endpoint.' }, ...errors(401, 403, 404) },
        },
      },
      '/v1/keys': {
        get: {
          summary: 'List principals (admin:>).',
          responses: { '200': { description: 'Principals.' }, ...errors(401, 403) },
        },
        post: {
          summary: 'Create an API key (admin:>); the key is returned once.',
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['name', 'scopes'],
              properties: {
                name: { type: 'string' },
                scopes: { type: 'array', items: { type: 'string' } },
                rateLimits: { type: 'object' },
              },
            }),
          },
          responses: { '201': { description: 'Created.' }, ...errors(400, 401, 403) },
        },
      },
      '/v1/keys/{id}': {
        delete: {
          summary: 'Revoke a key (admin:>).',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'Revoked.' }, ...errors(401, 403, 404) },
        },
      },
      '/v1/retention-policies': {
        get: {
          summary: 'Every retention policy, by name, and the last run report (admin:>; ADR 0017).',
          responses: { '200': { description: 'Policies and lastRun.' }, ...errors(401, 403) },
        },
      },
      '/v1/retention-policies/{name}': {
        get: {
          summary: 'One retention policy (admin:>).',
          parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'The policy.' }, ...errors(401, 403, 404) },
        },
        put: {
          summary:
            'Create (201) or replace (200) a retention policy whole; the most specific pattern governs a topic (admin:>, audited).',
          parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['pattern'],
              additionalProperties: false,
              properties: {
                pattern: { type: 'string', description: 'topic pattern (`*` one token, `>` the rest)' },
                maxAgeMs: { type: 'integer', minimum: 0, description: 'older records may go' },
                maxBytes: {
                  type: 'integer',
                  minimum: 0,
                  description: 'records may go once newer ones of the policy hold this many payload bytes',
                },
                maxCount: {
                  type: 'integer',
                  minimum: 0,
                  description: 'records may go once the policy has this many newer ones',
                },
                onUnacknowledged: {
                  type: 'string',
                  enum: ['wait', 'drop'],
                  default: 'wait',
                  description:
                    'wait for durable subscriptions that have not acknowledged, or drop and tell them',
                },
                version: {
                  type: 'integer',
                  minimum: 0,
                  description: 'the stored version expected (0: none)',
                },
              },
            }),
          },
          responses: {
            '200': { description: 'Replaced.' },
            '201': { description: 'Created.' },
            ...errors(400, 401, 403, 409),
          },
        },
        delete: {
          summary: 'Delete a retention policy (admin:>, audited).',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            q('version', 'the stored version expected', { type: 'integer' }),
          ],
          responses: { '204': { description: 'Deleted.' }, ...errors(400, 401, 403, 404, 409) },
        },
      },
      '/v1/routes': {
        get: {
          summary: 'The active routing rule set (admin:>).',
          responses: { '200': { description: 'The active version.' }, ...errors(401, 403) },
        },
        post: {
          summary:
            'A new rule-set version, validated whole first; activated unless activate is false (admin:>).',
          requestBody: {
            required: true,
            content: json({
              allOf: [
                ref('RuleSet'),
                {
                  type: 'object',
                  properties: {
                    comment: { type: 'string' },
                    activate: { type: 'boolean', default: true },
                    ifActive: {
                      type: 'integer',
                      description: 'refused with 409 unless this version is active',
                    },
                  },
                },
              ],
            }),
          },
          responses: { '201': { description: 'Stored (and activated).' }, ...errors(400, 401, 403, 409) },
        },
      },
      '/v1/routes/versions': {
        get: {
          summary: 'Stored versions, newest first (admin:>).',
          parameters: [
            q('limit', '1-1000 (default 100)', { type: 'integer' }),
            q('before', 'versions below this one', { type: 'integer' }),
          ],
          responses: { '200': { description: 'Versions.' }, ...errors(400, 401, 403) },
        },
      },
      '/v1/routes/versions/{version}': {
        get: {
          summary: 'One version (0 is the built-in set) (admin:>).',
          parameters: [{ name: 'version', in: 'path', required: true, schema: { type: 'integer' } }],
          responses: { '200': { description: 'The version.' }, ...errors(400, 401, 403, 404) },
        },
      },
      '/v1/routes/versions/{version}:activate': {
        post: {
          summary: 'Activate a stored version (rollback); body { ifActive? } (admin:>).',
          parameters: [{ name: 'version', in: 'path', required: true, schema: { type: 'integer' } }],
          responses: { '200': { description: 'The active version.' }, ...errors(400, 401, 403, 404, 409) },
        },
      },
      '/v1/routes:test': {
        post: {
          summary:
            'Dry-run: a candidate (ruleSet or version) beside the active set over sample decisions or a recorded time range (admin:>).',
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              properties: {
                ruleSet: ref('RuleSet'),
                version: { type: 'integer' },
                decisions: { type: 'array', items: ref('Decision'), maxItems: 1000 },
                from: { type: 'string', format: 'date-time' },
                to: { type: 'string', format: 'date-time' },
                limit: { type: 'integer', minimum: 1, maximum: 1000 },
              },
            }),
          },
          responses: {
            '200': { description: 'Per decision both outcomes and the differences.' },
            ...errors(400, 401, 403, 404),
          },
        },
      },
      '/v1/decisions/{decisionId}/route': {
        get: {
          summary:
            'Explain: recorded rule-set version and matched rules, topics, actions, subscriptions that took or filtered it.',
          parameters: [
            { name: 'decisionId', in: 'path', required: true, schema: { type: 'string' } },
            q('revision', 'a stored revision', { type: 'integer', minimum: 1 }),
          ],
          responses: { '200': { description: 'The explanation.' }, ...errors(400, 401, 403, 404) },
        },
      },
      '/v1/audit': {
        get: {
          summary: 'Audit records (admin:>).',
          parameters: [
            q('after', 'seq to start after', { type: 'integer' }),
            q('limit', '1-1000', { type: 'integer' }),
          ],
          responses: { '200': { description: 'Records.' }, ...errors(400, 401, 403) },
        },
      },
      '/v1/audit/verify': {
        get: {
          summary: 'Verify the hash chain (admin:>).',
          responses: { '200': { description: 'Verification.' }, ...errors(401, 403) },
        },
      },
      '/v1/schemas/decision.json': {
        get: {
          summary: 'The decision JSON Schema.',
          security: [],
          responses: { '200': { description: 'JSON Schema.' } },
        },
      },
      '/healthz': {
        get: { summary: 'Liveness.', security: [], responses: { '200': { description: 'Alive.' } } },
      },
      '/readyz': {
        get: {
          summary: 'Readiness (503 while starting or draining).',
          security: [],
          responses: { '200': { description: 'Ready.' }, ...errors(503) },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics.',
          security: [],
          responses: { '200': { description: 'Text exposition format.' } },
        },
      },
    },
  };
}
