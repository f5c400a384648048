/**
 * Routing rule sets over REST (DESIGN 4; ADR 0013): the active set, new versions, the version list,
 * activation (rollback), dry-runs, and the explanation of one decision's routing.
 */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { parsePosition } from '../../../domain/position.ts';
import { CdsError } from '../../../errors/index.ts';
import { recordRoute, toStored } from '../../../ingest/record.ts';
import type { RecordedDecision, RecordedRange } from '../../../routing/service.ts';
import type { DecisionIndexEntry, QueryMark } from '../../../state/index.ts';
import { requireGlobalAdmin } from '../caller.ts';
import { namedDecision } from '../decision-ref.ts';

const VERSION = /^(0|[1-9][0-9]{0,9})$/;
/** How long reads wait for acknowledged decisions to reach the index (read-your-writes). */
const INDEX_WAIT_MS = 2000;

function badQuery(path: string, code: string, message: string): CdsError {
  return new CdsError('INVALID_QUERY', `${path}: ${message}`, {
    details: { errors: [{ path, code, message }] },
  });
}

function versionParam(v: string): number {
  if (!VERSION.test(v))
    throw new CdsError('VALIDATION_FAILED', `'${v}' is not a rule set version`, {
      details: { errors: [{ path: 'version', code: 'pattern', message: 'a non-negative integer' }] },
    });
  return Number(v);
}

/** The recorded decision at a stored position, with the routing facts of its headers. */
async function recorded(
  ctx: AppContext,
  partition: number,
  offset: number,
): Promise<RecordedDecision | undefined> {
  const rec = await ctx.log.readOne(partition, offset);
  if (rec === undefined) return undefined;
  const s = toStored(rec, ctx.log.epoch);
  const r = recordRoute(rec);
  return {
    decision: s.decision,
    position: s.position,
    receivedAt: s.receivedAt,
    topics: s.topics,
    key: s.key,
    priority: s.priority,
    rules: r.rules,
    ...(r.ruleSet === undefined ? {} : { ruleSet: r.ruleSet }),
    ...(r.holdUntil === undefined ? {} : { holdUntil: r.holdUntil }),
    ...(r.quarantined === undefined ? {} : { quarantined: r.quarantined }),
  };
}

/** Recorded decisions received in a time range, oldest first (every revision). */
async function loadRange(ctx: AppContext, range: RecordedRange): Promise<RecordedDecision[]> {
  await Promise.race([
    ctx.publisher.indexer.idle(),
    new Promise((r) => setTimeout(r, INDEX_WAIT_MS).unref()),
  ]);
  const entries: DecisionIndexEntry[] = [];
  let after: QueryMark | undefined;
  while (entries.length < range.limit) {
    const page = await ctx.state.decisions.query(
      { fromTime: range.from, toTime: range.to, latestOnly: false },
      { ...(after ? { after } : {}), limit: range.limit - entries.length, order: 'asc' },
    );
    entries.push(...page.entries);
    if (page.next === undefined) break;
    after = page.next;
  }
  const out = await Promise.all(entries.map((e) => recorded(ctx, e.partition, e.offset)));
  return out.filter((r): r is RecordedDecision => r !== undefined);
}

/** Registers /v1/routes and GET /v1/decisions/{id}/route. */
export function registerRuleRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get('/v1/routes', async (req) => {
    requireGlobalAdmin(req);
    return ctx.rules.current();
  });

  app.post('/v1/routes', async (req, reply) => {
    const caller = requireGlobalAdmin(req);
    const view = await ctx.rules.create(req.body, caller);
    return reply.code(201).send(view);
  });

  app.get<{ Querystring: Record<string, unknown> }>('/v1/routes/versions', async (req) => {
    requireGlobalAdmin(req);
    let limit = 100;
    let before: number | undefined;
    for (const [k, v] of Object.entries(req.query)) {
      if (k === 'limit') {
        if (typeof v !== 'string' || !/^[1-9][0-9]{0,3}$/.test(v) || Number(v) > 1000)
          throw badQuery('limit', 'range', 'an integer 1-1000');
        limit = Number(v);
      } else if (k === 'before') {
        if (typeof v !== 'string' || !/^[1-9][0-9]{0,9}$/.test(v))
          throw badQuery('before', 'range', 'a positive version number');
        before = Number(v);
      } else throw badQuery(k, 'unknown_parameter', 'unknown parameter (limit and before are accepted)');
    }
    const versions = await ctx.rules.versions({ limit, ...(before === undefined ? {} : { before }) });
    const last = versions[versions.length - 1];
    return {
      active: ctx.rules.activeVersion,
      versions,
      nextBefore: versions.length === limit && last !== undefined && last.version > 1 ? last.version : null,
    };
  });

  app.get<{ Params: { version: string } }>('/v1/routes/versions/:version', async (req) => {
    requireGlobalAdmin(req);
    return ctx.rules.version(versionParam(req.params.version));
  });

  // POST /v1/routes/versions/3:activate (the router cannot put a literal colon after a parameter)
  app.post<{ Params: { spec: string } }>('/v1/routes/versions/:spec', async (req) => {
    const caller = requireGlobalAdmin(req);
    const m = /^(.*):activate$/.exec(req.params.spec);
    if (m === null)
      throw new CdsError(
        'ROUTE_NOT_FOUND',
        `no endpoint POST ${req.url.split('?')[0]}; use {version}:activate`,
      );
    return ctx.rules.activate(versionParam(m[1] as string), req.body, caller);
  });

  app.post('/v1/routes::test', async (req) => {
    requireGlobalAdmin(req);
    return ctx.rules.test(req.body, (r) => loadRange(ctx, r));
  });

  app.get<{ Params: { decisionId: string }; Querystring: Record<string, unknown> }>(
    '/v1/decisions/:decisionId/route',
    async (req) => {
      const { decisionId } = req.params;
      const s = (await namedDecision(ctx, req)).stored;
      const { partition, offset } = parsePosition(s.position);
      const r = await recorded(ctx, partition, offset);
      if (r === undefined)
        throw new CdsError('NOT_FOUND', `decision '${decisionId}' is no longer in the log`);
      const routing = await ctx.rules.explain(r);
      const ledger = await ctx.ledger.deliveries(s, true);
      return {
        decisionId: s.decisionId,
        revision: s.revision,
        position: s.position,
        receivedAt: s.receivedAt,
        ...routing,
        subscriptions: { took: ledger.deliveries, filtered: ledger.filtered ?? [] },
      };
    },
  );
}
