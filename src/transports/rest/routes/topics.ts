/**
 * Topic endpoints (ADR 0019): GET /v1/topics/{topic}/decisions (historical retrieval between two
 * positions or times, streamed as NDJSON) and GET /v1/topics/{topic}/latest (the latest revision of
 * each decision on the topic, with the positions the view is current at). `topic` is a topic or a
 * pattern (`*`, `>`; URL-encoded). Everything is checked before the first byte is sent.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AppContext } from '../../../app-context.ts';
import { parsePosition, type Position } from '../../../domain/position.ts';
import { patternErrors, patternsOverlap, topicMatches } from '../../../domain/topics.ts';
import { CdsError, type FieldError } from '../../../errors/index.ts';
import {
  historyChunks,
  latestChunks,
  LineEncoder,
  resolveRange,
  type Bound,
  type PartitionRange,
} from '../../../history/index.ts';
import type { PartitionExtent } from '../../../log/index.ts';
import type { AuthContext } from '../../../security/index.ts';
import { patternCovers } from '../../../subscriptions/index.ts';
import { callerOf } from '../caller.ts';
import { maySee } from '../decision-ref.ts';
import { parseTime } from '../query-params.ts';
import { streamAnswer } from '../stream.ts';

/** Longest wait for the decision index to reach the log's end (unknown-topic check, latest view). */
const INDEX_WAIT_MS = 10_000;
/** Index pages examined to find one decision on a topic before it is taken as known. */
const KNOWN_SCANS = 64;
const NDJSON = 'application/x-ndjson';
const POSITIONS = /^\d+:\d+(,\d+:\d+)*$/;

type TopicRequest = FastifyRequest<{ Params: { topic: string }; Querystring: Record<string, unknown> }>;

function badQuery(errors: FieldError[]): CdsError {
  return new CdsError('INVALID_QUERY', `bad query parameters: ${errors.map((e) => e.path).join(', ')}`, {
    details: { errors },
  });
}

/** The query parameters, each given once and known; INVALID_QUERY naming every bad one. */
function params(req: TopicRequest, known: readonly string[]): Record<string, string> {
  const errors: FieldError[] = [];
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.query)) {
    if (!known.includes(k))
      errors.push({
        path: k,
        code: 'unknown_parameter',
        message: `unknown parameter; known: ${known.join(', ')}`,
      });
    else if (typeof v !== 'string')
      errors.push({ path: k, code: 'repeated', message: 'given more than once' });
    else out[k] = v;
  }
  if (errors.length > 0) throw badQuery(errors);
  return out;
}

/** A bound: positions `P:O[,P:O...]` (one per partition at most) or an RFC 3339 time. */
function bound(v: string, name: string, errors: FieldError[]): Bound | undefined {
  if (POSITIONS.test(v)) {
    const positions: Position[] = v.split(',').map((s) => parsePosition(s, name));
    if (new Set(positions.map((p) => p.partition)).size !== positions.length) {
      errors.push({ path: name, code: 'repeated', message: 'names a partition more than once' });
      return undefined;
    }
    return { kind: 'positions', positions };
  }
  if (/^\d{4}-/.test(v)) {
    const time = parseTime(v, name, errors);
    return time === undefined ? undefined : { kind: 'time', time };
  }
  errors.push({
    path: name,
    code: 'format',
    message: `'${v}' is neither a position (partition:offset) nor an RFC 3339 date-time with a zone`,
  });
  return undefined;
}

/** Whether a subscribe (or admin, which implies it) grant of the caller stands in `rel` to a pattern. */
const readGrant = (caller: AuthContext, rel: (grant: string) => boolean): boolean =>
  caller.grants.some((g) => (g.action === 'subscribe' || g.action === 'admin') && rel(g.pattern));

/** The topic of the path, checked, and the caller's right to read it. */
function topicOf(req: TopicRequest): { caller: AuthContext; topic: string } {
  const caller = callerOf(req);
  const topic = req.params.topic;
  const errors = patternErrors(topic, 'topic');
  if (errors.length > 0)
    throw new CdsError('VALIDATION_FAILED', `topic: ${errors[0]?.message}`, { details: { errors } });
  if (!readGrant(caller, (grant) => patternsOverlap(grant, topic)))
    throw new CdsError('FORBIDDEN', `no subscribe scope on any topic '${topic}' matches`);
  return { caller, topic };
}

/**
 * Which stored topic lists a caller gets for a pattern: one topic matching it, and (as the query API
 * does) the caller may see the decision: subscribe on one of its topics. A caller whose grants cover
 * the whole pattern sees every match, so the second test is skipped.
 */
function selection(caller: AuthContext, topic: string): (topics: readonly string[]) => boolean {
  const covered = readGrant(caller, (grant) => patternCovers(grant, topic));
  return (topics) => topics.some((t) => topicMatches(topic, t)) && (covered || maySee(caller, topics));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * UNKNOWN_TOPIC unless the decision index holds a decision on a topic the pattern matches (after
 * waiting a little for acknowledged decisions to reach the index). A pattern whose decisions are too
 * rare to find within a few index pages is taken as known rather than refused.
 */
async function requireKnownTopic(ctx: AppContext, topic: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    let after;
    for (let scans = 0; scans < KNOWN_SCANS; scans++) {
      const page = await ctx.state.decisions.query(
        { topic, latestOnly: false },
        { limit: 1, order: 'desc', ...(after === undefined ? {} : { after }) },
      );
      if (page.entries.length > 0 || (page.next !== undefined && scans === KNOWN_SCANS - 1)) return;
      if (page.next === undefined) break;
      after = page.next;
    }
    if (attempt === 0) await Promise.race([ctx.publisher.indexer.idle(), sleep(2000)]);
  }
  throw new CdsError('UNKNOWN_TOPIC', `nothing was ever stored on a topic '${topic}' matches`);
}

/** Waits until the decision index covers every record before `upTo`; STORAGE_UNAVAILABLE if it does not. */
async function waitIndexed(ctx: AppContext, upTo: readonly PartitionExtent[]): Promise<void> {
  const deadline = Date.now() + INDEX_WAIT_MS;
  for (;;) {
    const cp = await ctx.state.decisions.checkpoint();
    if (upTo.every((e) => (cp[e.partition] ?? 0) >= e.next)) return;
    if (Date.now() > deadline)
      throw new CdsError('STORAGE_UNAVAILABLE', 'the decision index is behind the log; retry', {
        retryAfterSeconds: 1,
      });
    await Promise.race([ctx.publisher.indexer.idle(), sleep(20)]);
  }
}

const positionsOf = (ranges: readonly PartitionRange[], end: 'from' | 'to') =>
  ranges.map((r) => `${r.partition}:${r[end]}`).join(',');

function flag(v: string | undefined, name: string): boolean {
  if (v === undefined || v === 'false') return false;
  if (v === 'true') return true;
  throw badQuery([{ path: name, code: 'enum', message: 'true or false' }]);
}

/** Registers /v1/topics routes. */
export function registerTopicRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get('/v1/topics/:topic/decisions', async (request, reply) => {
    const req = request as TopicRequest;
    const q = params(req, ['from', 'to', 'epoch']);
    const errors: FieldError[] = [];
    const from = q['from'] === undefined ? undefined : bound(q['from'], 'from', errors);
    const to = q['to'] === undefined ? undefined : bound(q['to'], 'to', errors);
    if (errors.length > 0) throw badQuery(errors);
    const { caller, topic } = topicOf(req);
    if (q['epoch'] !== undefined && q['epoch'] !== ctx.log.epoch)
      throw new CdsError(
        'EPOCH_MISMATCH',
        `the positions are of epoch ${q['epoch']}; the log is now at epoch ${ctx.log.epoch}`,
        { details: { epoch: ctx.log.epoch } },
      );
    await requireKnownTopic(ctx, topic);
    const ranges = await resolveRange(ctx.log, from, to);
    const encoder = new LineEncoder({
      epoch: ctx.log.epoch,
      now: Date.now(),
      select: selection(caller, topic),
    });
    await streamAnswer(
      ctx,
      req,
      reply,
      {
        headers: {
          'content-type': NDJSON,
          'x-cds-epoch': ctx.log.epoch,
          'x-cds-from': positionsOf(ranges, 'from'),
          'x-cds-to': positionsOf(ranges, 'to'),
        },
      },
      (signal) => historyChunks(ctx.log, ranges, encoder, { signal }),
    );
  });

  app.get('/v1/topics/:topic/latest', async (request, reply) => {
    const req = request as TopicRequest;
    const q = params(req, ['excludeCancelled', 'excludeExpired']);
    const excludeCancelled = flag(q['excludeCancelled'], 'excludeCancelled');
    const excludeExpired = flag(q['excludeExpired'], 'excludeExpired');
    const { caller, topic } = topicOf(req);
    await requireKnownTopic(ctx, topic);
    const snapshot = ctx.log.extents();
    await waitIndexed(ctx, snapshot);
    const ranges = snapshot.map((e) => ({ partition: e.partition, from: e.first, to: e.next }));
    const positions = ranges.map((r) => `${r.partition}:${r.to}`);
    const encoder = new LineEncoder({
      epoch: ctx.log.epoch,
      now: Date.now(),
      select: selection(caller, topic),
    });
    const ndjson = (req.headers.accept ?? '').includes(NDJSON);
    let count = 0;
    await streamAnswer(
      ctx,
      req,
      reply,
      {
        headers: {
          'content-type': ndjson ? NDJSON : 'application/json; charset=utf-8',
          'x-cds-epoch': ctx.log.epoch,
          'x-cds-positions': positions.join(','),
        },
        ...(ndjson
          ? {}
          : {
              head: `{"epoch":${JSON.stringify(ctx.log.epoch)},"positions":${JSON.stringify(positions)},"items":[`,
              // NDJSON lines to array elements: a line's only newline is its end (JSON.stringify
              // escapes newlines in strings), so each becomes the separating comma.
              map: (bytes: Buffer, first: boolean) => {
                for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a) bytes[i] = 0x2c;
                const body = bytes.subarray(0, bytes.length - 1);
                return first ? body : Buffer.concat([Buffer.from(','), body]);
              },
              tail: () => `],"count":${count}}`,
              errorLine: (e) => `],"error":${JSON.stringify(e.toJSON().error)}}`,
            }),
      },
      (signal) =>
        (async function* () {
          for await (const c of latestChunks(ctx.log, ctx.state.decisions, ranges, encoder, {
            excludeCancelled,
            excludeExpired,
            signal,
          })) {
            count = c.lines;
            yield c;
          }
        })(),
    );
  });
}
