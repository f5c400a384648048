/**
 * Publishing on behalf of an authenticated caller, the same for every transport: the publish scope,
 * the decision rate limit (audited when refused), the publish itself and its metrics.
 */
import type { AppContext } from '../app-context.ts';
import { CdsError } from '../errors/index.ts';
import type { PublishResult } from '../ingest/publisher.ts';
import { allows, type AuthContext } from '../security/index.ts';

/** Publishes `items` (atomically) for `caller`; `where` names the endpoint in audit records. */
export async function publishAs(
  ctx: AppContext,
  caller: AuthContext,
  items: readonly unknown[],
  batch: boolean,
  where: string,
): Promise<PublishResult[]> {
  const started = performance.now();
  if (!caller.grants.some((g) => g.action === 'publish' || g.action === 'admin')) {
    throw new CdsError('FORBIDDEN', `${caller.name} has no publish scope`);
  }
  const wait = ctx.limiter.decisions(caller.principalId, items.length, caller.rateLimits);
  if (wait > 0) {
    ctx.audit.rateLimited(caller.principalId, where);
    ctx.metrics.denied.inc({ code: 'RATE_LIMITED' });
    throw new CdsError('RATE_LIMITED', `decision rate limit of ${caller.name} exceeded`, {
      retryAfterSeconds: wait,
    });
  }
  try {
    const results = await ctx.publisher.publish(items, batch, (topic) =>
      allows(caller.grants, 'publish', topic),
    );
    ctx.metrics.batchSize.observe(items.length);
    let dup = 0;
    for (const r of results) if (r.duplicate) dup++;
    ctx.metrics.published.inc(results.length - dup);
    if (dup > 0) ctx.metrics.duplicates.inc(dup);
    ctx.metrics.publishSeconds.observe((performance.now() - started) / 1000);
    return results;
  } catch (e) {
    ctx.metrics.rejected.inc({ code: e instanceof CdsError ? e.code : 'INTERNAL' }, items.length);
    throw e;
  }
}
