/**
 * The decision a `/v1/decisions/{decisionId}[/…]` request names: the id checked, `?revision=N` and
 * the endpoint's other parameters parsed, the decision found, and the caller's subscribe scope
 * checked on its topics. Shared by the decision, route-explain and ledger endpoints.
 */
import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../../app-context.ts';
import { CdsError } from '../../errors/index.ts';
import type { StoredDecision } from '../../ingest/record.ts';
import { allows, isGlobalAdmin, type AuthContext } from '../../security/index.ts';
import { callerOf } from './caller.ts';

const ID = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/** Whether the caller may read a decision with these topics (subscribe on one of them, or admin). */
export function maySee(p: AuthContext, topics: readonly string[]): boolean {
  return isGlobalAdmin(p.grants) || topics.some((t) => allows(p.grants, 'subscribe', t));
}

function badQuery(path: string, code: string, message: string): CdsError {
  return new CdsError('INVALID_QUERY', `${path}: ${message}`, {
    details: { errors: [{ path, code, message }] },
  });
}

/** A request on one decision. */
export type DecisionRequest = FastifyRequest<{
  Params: { decisionId: string };
  Querystring: Record<string, unknown>;
}>;

/**
 * Resolves the named decision. `flags` names the endpoint's boolean parameters besides `revision`
 * (`true` or `false`); any other parameter is refused.
 */
export async function namedDecision(
  ctx: AppContext,
  req: DecisionRequest,
  flags: readonly string[] = [],
): Promise<{ stored: StoredDecision; revisions: number[]; flags: Record<string, boolean> }> {
  const caller = callerOf(req);
  const { decisionId } = req.params;
  if (!ID.test(decisionId)) {
    throw new CdsError('VALIDATION_FAILED', 'decisionId is not a valid id', {
      details: { errors: [{ path: 'decisionId', code: 'pattern', message: 'not a valid id' }] },
    });
  }
  let revision: number | undefined;
  const set: Record<string, boolean> = {};
  for (const [k, v] of Object.entries(req.query)) {
    if (k === 'revision') {
      if (typeof v !== 'string' || !/^[1-9][0-9]{0,9}$/.test(v))
        throw badQuery('revision', 'range', 'a positive integer');
      revision = Number(v);
    } else if (flags.includes(k)) {
      if (v !== 'true' && v !== 'false') throw badQuery(k, 'enum', 'true or false');
      set[k] = v === 'true';
    } else {
      throw badQuery(
        k,
        'unknown_parameter',
        `unknown parameter (accepted: ${['revision', ...flags].join(', ')})`,
      );
    }
  }
  const found = await ctx.publisher.get(decisionId, revision);
  if (found === undefined) {
    throw new CdsError(
      'NOT_FOUND',
      revision === undefined
        ? `no decision '${decisionId}'`
        : `no revision ${revision} of decision '${decisionId}'`,
    );
  }
  if (!maySee(caller, found.stored.topics)) {
    throw new CdsError('FORBIDDEN', `no subscribe scope for the topics of '${decisionId}'`);
  }
  return { ...found, flags: set };
}
