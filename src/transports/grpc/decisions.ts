/** DecisionService (ADR 0012): Publish, PublishStream (batches answered in order), Get, Query. */
import type { ServerDuplexStream, ServerWritableStream } from '@grpc/grpc-js';
import type { AppContext } from '../../app-context.ts';
import { publishAs } from '../publish.ts';
import { CdsError } from '../../errors/index.ts';
import type { PublishResult as Published } from '../../ingest/publisher.ts';
import { allows, isGlobalAdmin, type AuthContext } from '../../security/index.ts';
import { CursorCodec, fingerprint, parseDecisionQuery } from '../rest/query-params.ts';
import { admit, isMalformed, malformedError, StreamCounters, unary, auditForbidden } from './call.ts';
import { toServiceError, toStreamError } from './errors.ts';
import type { PublishResult } from './gen/cds/v1/common.ts';
import type {
  DecisionServiceServer,
  GetRequest,
  GetResponse,
  PublishRequest,
  PublishResponse,
  PublishStreamRequest,
  PublishStreamResponse,
  QueryRequest,
  QueryResponse,
} from './gen/cds/v1/decisions.ts';
import type { StreamRegistry } from './streams.ts';

const ID = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
/** Batches of one PublishStream being published at once (answers keep their order). */
const MAX_PIPELINED = 32;

function maySee(p: AuthContext, topics: readonly string[]): boolean {
  return isGlobalAdmin(p.grants) || topics.some((t) => allows(p.grants, 'subscribe', t));
}

function toProto(r: Published): PublishResult {
  return {
    decisionId: r.decisionId,
    revision: r.revision,
    position: r.position,
    epoch: r.epoch,
    topics: [...r.topics],
    duplicate: r.duplicate,
  };
}

/** Parses, checks and publishes one atomic batch of JSON-encoded decisions. */
async function publishBatch(ctx: AppContext, caller: AuthContext, raw: readonly Uint8Array[]) {
  const items: unknown[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    try {
      items[i] = JSON.parse(Buffer.from(raw[i] as Uint8Array).toString('utf8'));
    } catch (e) {
      throw new CdsError('MALFORMED_JSON', `decision ${i} is not valid JSON: ${(e as Error).message}`, {
        details: { errors: [{ path: `/${i}`, code: 'malformed_json', message: (e as Error).message }] },
      });
    }
  }
  return (await publishAs(ctx, caller, items, true, 'gRPC Publish')).map(toProto);
}

/** The DecisionService implementation. */
export function decisionService(
  ctx: AppContext,
  streams: StreamRegistry,
  heartbeatMs: number,
): DecisionServiceServer {
  const cursors = new CursorCodec(ctx.cursorSecret);

  const publish = unary<PublishRequest, PublishResponse>(ctx, 'Publish', async (req, caller) => ({
    results: await publishBatch(ctx, caller, req.decisions),
  }));

  const get = unary<GetRequest, GetResponse>(ctx, 'Get', async (req, caller) => {
    if (!ID.test(req.decisionId))
      throw new CdsError('VALIDATION_FAILED', 'decisionId is not a valid id', {
        details: { errors: [{ path: 'decision_id', code: 'pattern', message: 'not a valid id' }] },
      });
    const found = await ctx.publisher.get(req.decisionId, req.revision === 0 ? undefined : req.revision);
    if (found === undefined)
      throw new CdsError(
        'NOT_FOUND',
        req.revision === 0
          ? `no decision '${req.decisionId}'`
          : `no revision ${req.revision} of decision '${req.decisionId}'`,
      );
    if (!maySee(caller, found.stored.topics))
      throw new CdsError('FORBIDDEN', `no subscribe scope for the topics of '${req.decisionId}'`);
    return { decisions: [Buffer.from(JSON.stringify(found.stored))], revisions: found.revisions };
  });

  function query(call: ServerWritableStream<QueryRequest, QueryResponse>): void {
    const run = async () => {
      const caller = await admit(ctx, call.metadata, 'Query');
      const req = call.request;
      if (isMalformed(req)) throw malformedError(req, 'Query request');
      const total = req.limit === 0 ? 1000 : req.limit;
      if (total > 100_000)
        throw new CdsError('INVALID_QUERY', 'limit is at most 100000', {
          details: { errors: [{ path: 'limit', code: 'range', message: '1..100000' }] },
        });
      const raw: Record<string, string> = {};
      const str: [keyof QueryRequest, string][] = [
        ['portfolioId', 'portfolioId'],
        ['strategyId', 'strategyId'],
        ['symbol', 'symbol'],
        ['assetClass', 'assetClass'],
        ['type', 'type'],
        ['verdict', 'verdict'],
        ['from', 'from'],
        ['to', 'to'],
        ['topic', 'topic'],
        ['order', 'order'],
        ['cursor', 'cursor'],
      ];
      for (const [k, q] of str) if (req[k] !== '') raw[q] = String(req[k]);
      if (req.minPriority > 0) raw['minPriority'] = String(req.minPriority);
      if (req.maxPriority > 0) raw['maxPriority'] = String(req.maxPriority);
      if (req.revisions) raw['revisions'] = 'all';
      raw['limit'] = String(req.pageSize === 0 ? 100 : req.pageSize);
      const parsed = parseDecisionQuery(raw, cursors);
      await ctx.publisher.indexer.idle();
      let after = parsed.after;
      let sent = 0;
      while (sent < total && !call.cancelled) {
        const page = await ctx.state.decisions.query(parsed.query, {
          ...(after ? { after } : {}),
          limit: Math.min(parsed.limit, total - sent),
          order: parsed.order,
        });
        const visible = page.entries.filter((e) => maySee(caller, e.topics));
        const stored = await ctx.publisher.load(visible);
        sent += stored.length;
        after = page.next;
        const next =
          after === undefined ? '' : cursors.encode(fingerprint(parsed.query, parsed.order), after);
        if (stored.length > 0 || after === undefined)
          call.write({ decisions: stored.map((s) => Buffer.from(JSON.stringify(s))), nextCursor: next });
        if (after === undefined) break;
      }
    };
    run().then(
      () => call.end(),
      (e: unknown) => call.emit('error', toServiceError(e)),
    );
  }

  function publishStream(call: ServerDuplexStream<PublishStreamRequest, PublishStreamResponse>): void {
    const stats = new StreamCounters();
    let tail: Promise<void> = Promise.resolve();
    let inFlight = 0;
    let ended = false;
    const hb = setInterval(
      () => write({ heartbeat: { atMs: Date.now(), stats: stats.snapshot() } }),
      heartbeatMs,
    );
    hb.unref();
    const unregisterStream = streams.add((e) => {
      ended = true;
      clearInterval(hb);
      call.emit('error', toServiceError(e));
    });
    const unregister = () => {
      clearInterval(hb);
      unregisterStream();
    };
    call.on('cancelled', () => {
      ended = true;
      unregister();
    });
    call.on('error', () => undefined);
    const write = (m: PublishStreamResponse) => {
      if (ended) return;
      stats.messagesOut++;
      call.write(m);
    };
    admit(ctx, call.metadata, 'PublishStream').then(
      (caller) => {
        call.on('data', (m: PublishStreamRequest) => {
          stats.messagesIn++;
          if (isMalformed(m)) {
            stats.errors++;
            const err = toStreamError(malformedError(m, 'PublishStream'));
            tail = tail.then(() => write({ result: { batchId: 0, results: [], error: err } }));
            return;
          }
          if (m.heartbeat !== undefined) {
            tail = tail.then(() => write({ heartbeat: { atMs: Date.now(), stats: stats.snapshot() } }));
            return;
          }
          const b = m.batch;
          if (b === undefined) return;
          stats.itemsIn += b.decisions.length;
          const outcome = publishBatch(ctx, caller, b.decisions).then(
            (results) => ({ batchId: b.batchId, results, error: undefined }),
            (e: unknown) => {
              stats.errors++;
              auditForbidden(ctx, caller, 'PublishStream', e);
              return { batchId: b.batchId, results: [], error: toStreamError(e) };
            },
          );
          if (++inFlight >= MAX_PIPELINED) call.pause();
          tail = tail.then(async () => {
            const result = await outcome;
            stats.itemsOut += result.results.length;
            write({ result });
            if (inFlight-- === MAX_PIPELINED) call.resume();
          });
        });
        call.on('end', () => {
          void tail.then(() => {
            unregister();
            if (!ended) call.end();
            ended = true;
          });
        });
      },
      (e: unknown) => {
        unregister();
        ended = true;
        call.emit('error', toServiceError(e));
      },
    );
  }

  return { publish, publishStream, get, query };
}
