/** Decision endpoints: publish (one or an atomic batch), get one, query with filters and cursors. */
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { CdsError } from '../../../errors/index.ts';
import type { StoredDecision } from '../../../ingest/record.ts';
import { CursorCodec, fingerprint, parseDecisionQuery } from '../query-params.ts';
import { callerOf } from '../caller.ts';
import { maySee, namedDecision, type DecisionRequest } from '../decision-ref.ts';
import { publishAs } from '../../publish.ts';

/** How long a query waits for acknowledged decisions to reach the index (read-your-writes). */
const INDEX_WAIT_MS = 2000;
/** Index pages examined per query request before answering with what was found and a cursor. */
const MAX_SCANS = 8;

/** The API view of a stored decision. */
function view(s: StoredDecision): Record<string, unknown> {
  return { ...s };
}

/** Registers /v1/decisions routes. */
export function registerDecisionRoutes(app: FastifyInstance, ctx: AppContext): void {
  const cursors = new CursorCodec(ctx.cursorSecret);

  app.post('/v1/decisions', async (req, reply) => {
    const caller = callerOf(req);
    const body: unknown = req.body;
    if (body === undefined) {
      throw new CdsError(
        'MALFORMED_JSON',
        'the body is empty; send a decision or a JSON array of decisions',
        { details: { errors: [{ path: '', code: 'required', message: 'empty body' }] } },
      );
    }
    const batch = Array.isArray(body);
    const items: unknown[] = batch ? body : [body];
    const results = await publishAs(ctx, caller, items, batch, 'POST /v1/decisions');
    return reply.code(200).send(batch ? { results } : results[0]);
  });

  app.get('/v1/decisions/:decisionId', async (req) => {
    const found = await namedDecision(ctx, req as DecisionRequest);
    return { ...view(found.stored), revisions: found.revisions };
  });

  app.get<{ Querystring: Record<string, unknown> }>('/v1/decisions', async (req) => {
    const caller = callerOf(req);
    const parsed = parseDecisionQuery(req.query, cursors);
    await Promise.race([
      ctx.publisher.indexer.idle(),
      new Promise((r) => setTimeout(r, INDEX_WAIT_MS).unref()),
    ]);
    const items: Record<string, unknown>[] = [];
    let after = parsed.after;
    let exhausted = false;
    for (let scans = 0; scans < MAX_SCANS && items.length < parsed.limit; scans++) {
      const page = await ctx.state.decisions.query(parsed.query, {
        ...(after ? { after } : {}),
        limit: parsed.limit - items.length,
        order: parsed.order,
      });
      const visible = page.entries.filter((e) => maySee(caller, e.topics));
      for (const s of await ctx.publisher.load(visible)) items.push(view(s));
      if (page.next === undefined) {
        exhausted = true;
        break;
      }
      after = page.next;
    }
    const nextCursor =
      exhausted || after === undefined
        ? null
        : cursors.encode(fingerprint(parsed.query, parsed.order), after);
    return { items, nextCursor };
  });
}
