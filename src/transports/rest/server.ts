/**
 * The REST transport (DESIGN 7): a Fastify instance built from the app's services, without listening,
 * so that tests inject requests without sockets. Every /v1 request is authenticated, rate limited and
 * scope-checked; every error is answered in the registry's shape.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AppContext } from '../../app-context.ts';
import { CdsError } from '../../errors/index.ts';
import { Authenticator, type AuthContext } from '../../security/index.ts';
import { errorHandler, sendError } from './errors.ts';
import { registerDecisionRoutes } from './routes/decisions.ts';
import { registerAdminRoutes } from './routes/admin.ts';
import { registerBackupRoutes } from './routes/backups.ts';
import { registerOpsRoutes } from './routes/ops.ts';
import { registerSubscriptionRoutes } from './routes/subscriptions.ts';
import { registerSubscriptionStatsRoutes } from './routes/subscription-stats.ts';
import { registerLedgerRoutes } from './routes/ledger.ts';
import { registerRuleRoutes } from './routes/routes.ts';
import { registerRetentionRoutes } from './routes/retention.ts';
import { registerTopicRoutes } from './routes/topics.ts';
import { registerWebSocket } from '../ws/index.ts';
import { registerSse } from '../sse/index.ts';
import { registerWebhookRoutes } from '../webhook/routes.ts';
import { openApiDocument } from './openapi.ts';

/** Routes that need no credentials. */
const PUBLIC = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json', '/v1/schemas/decision.json']);

/** Builds the REST server (not listening). */
export async function buildRestServer(ctx: AppContext): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: ctx.logger.child({ transport: 'rest' }) as FastifyBaseLogger,
    // No per-request log lines (the top-level disableRequestLogging option is deprecated, FSTDEP023).
    logController: new Fastify.LogController({ disableRequestLogging: true }),
    bodyLimit: ctx.config.http.bodyLimitBytes,
    routerOptions: { ignoreTrailingSlash: true },
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: ctx.config.http.bodyLimitBytes },
    (_req, body, done) => {
      try {
        done(null, body.length === 0 ? undefined : JSON.parse(body as string));
      } catch (e) {
        done(
          new CdsError('MALFORMED_JSON', `the body is not valid JSON: ${(e as Error).message}`, {
            details: { errors: [{ path: '', code: 'malformed_json', message: (e as Error).message }] },
          }),
          undefined,
        );
      }
    },
  );
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, new CdsError('ROUTE_NOT_FOUND', `no endpoint ${req.method} ${req.url.split('?')[0]}`)),
  );

  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    if (ctx.lifecycle.draining && !PUBLIC.has(path)) {
      reply.header('connection', 'close');
      throw new CdsError(
        'SHUTTING_DOWN',
        'this instance is shutting down; retry on another or after restart',
        { retryAfterSeconds: 1 },
      );
    }
    if (!ctx.lifecycle.ready && !PUBLIC.has(path))
      throw new CdsError('NOT_READY', 'the instance is starting', { retryAfterSeconds: 1 });
    if (PUBLIC.has(path) || path === '/docs' || path.startsWith('/docs/')) return;
    let principal: AuthContext;
    try {
      principal = await ctx.auth.authenticate(Authenticator.credential(req.headers));
    } catch (e) {
      const err =
        e instanceof CdsError ? e : new CdsError('UNAUTHENTICATED', 'authentication failed', { cause: e });
      ctx.audit.denied('anonymous', `${req.method} ${path}`, err.code, err.message, { ip: req.ip });
      ctx.metrics.denied.inc({ code: err.code });
      throw err;
    }
    req.principal = principal;
    const wait = ctx.limiter.request(principal.principalId, principal.rateLimits);
    if (wait > 0) {
      ctx.audit.rateLimited(principal.principalId, `${req.method} ${path}`);
      ctx.metrics.denied.inc({ code: 'RATE_LIMITED' });
      throw new CdsError('RATE_LIMITED', `request rate limit of ${principal.name} exceeded`, {
        retryAfterSeconds: wait,
      });
    }
  });

  app.addHook('onError', async (req, _reply, err) => {
    if (req.principal !== undefined && err instanceof CdsError && err.code === 'FORBIDDEN') {
      const path = req.url.split('?')[0] ?? '';
      ctx.audit.denied(req.principal.principalId, `${req.method} ${path}`, err.code, err.message);
      ctx.metrics.denied.inc({ code: err.code });
    }
  });

  app.addHook('onResponse', async (req, reply) => {
    ctx.metrics.httpRequests.inc({
      route: req.routeOptions.url ?? 'unknown',
      status: String(reply.statusCode),
    });
  });

  registerOpsRoutes(app, ctx);
  registerDecisionRoutes(app, ctx);
  registerAdminRoutes(app, ctx);
  registerBackupRoutes(app, ctx);
  registerSubscriptionRoutes(app, ctx);
  registerSubscriptionStatsRoutes(app, ctx);
  registerLedgerRoutes(app, ctx);
  registerRuleRoutes(app, ctx);
  registerRetentionRoutes(app, ctx);
  registerTopicRoutes(app, ctx);
  registerWebSocket(app, ctx);
  registerSse(app, ctx);
  registerWebhookRoutes(app, ctx);
  await registerDocs(app, ctx);
  return app;
}

async function registerDocs(app: FastifyInstance, _ctx: AppContext): Promise<void> {
  const swagger = (await import('@fastify/swagger')).default;
  const swaggerUi = (await import('@fastify/swagger-ui')).default;
  await app.register(swagger, { mode: 'static', specification: { document: openApiDocument() as never } });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
