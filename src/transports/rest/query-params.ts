/**
 * Parsing of GET /v1/decisions query strings: every parameter is checked and named in the error, and
 * cursors are signed so that an altered or foreign cursor is refused rather than misread.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { AssetClasses, DecisionTypes, Verdicts } from '../../domain/decision.ts';
import { patternErrors } from '../../domain/topics.ts';
import { CdsError, type FieldError } from '../../errors/index.ts';
import type { DecisionQuery, QueryMark } from '../../state/index.ts';

/** A parsed decision query. */
export interface ParsedQuery {
  readonly query: DecisionQuery;
  readonly limit: number;
  readonly order: 'asc' | 'desc';
  readonly after?: QueryMark;
}

/** Most results per page, and the default. */
export const MAX_LIMIT = 1000;
const DEFAULT_LIMIT = 100;

const ID = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
const enums: Record<string, readonly string[]> = {
  assetClass: AssetClasses,
  type: DecisionTypes,
  verdict: Verdicts,
};
const KNOWN = new Set([
  'portfolioId',
  'strategyId',
  'symbol',
  'assetClass',
  'type',
  'verdict',
  'minPriority',
  'maxPriority',
  'from',
  'to',
  'topic',
  'limit',
  'cursor',
  'order',
  'revisions',
]);

/** Milliseconds of an RFC 3339 date-time with a zone; otherwise a `format` error naming the parameter. */
export function parseTime(v: string, name: string, errors: FieldError[]): number | undefined {
  if (
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/.test(v) &&
    !Number.isNaN(Date.parse(v))
  )
    return Date.parse(v);
  errors.push({ path: name, code: 'format', message: `'${v}' is not an RFC 3339 date-time with a zone` });
  return undefined;
}

function int(v: string, name: string, min: number, max: number, errors: FieldError[]): number | undefined {
  if (/^-?\d+$/.test(v)) {
    const n = Number(v);
    if (n >= min && n <= max) return n;
  }
  errors.push({ path: name, code: 'range', message: `must be an integer from ${min} to ${max}` });
  return undefined;
}

/** Signs and checks cursors with a secret of this installation. */
export class CursorCodec {
  constructor(private readonly secret: string) {}

  /** Encodes where the next page starts, bound to the query it belongs to. */
  encode(fingerprint: string, mark: QueryMark): string {
    const body = Buffer.from(
      JSON.stringify({ f: fingerprint, m: [mark.receivedAt, mark.partition, mark.offset] }),
    ).toString('base64url');
    return `${body}.${this.sign(body)}`;
  }

  /** Decodes a cursor of the same query; INVALID_CURSOR otherwise. */
  decode(cursor: string, fingerprint: string): QueryMark {
    const [body, sig] = cursor.split('.');
    const bad = (why: string) =>
      new CdsError('INVALID_CURSOR', `cursor: ${why}`, {
        details: { errors: [{ path: 'cursor', code: 'invalid_cursor', message: why }] },
      });
    if (body === undefined || sig === undefined || cursor.split('.').length !== 2) throw bad('malformed');
    const want = Buffer.from(this.sign(body));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got))
      throw bad('signature does not match (altered, or from another installation)');
    let parsed: { f?: unknown; m?: unknown };
    try {
      parsed = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { f?: unknown; m?: unknown };
    } catch {
      throw bad('malformed');
    }
    if (parsed.f !== fingerprint) throw bad('belongs to a query with other filters or order');
    const m = parsed.m;
    if (!Array.isArray(m) || m.length !== 3 || !m.every((x) => Number.isSafeInteger(x)))
      throw bad('malformed');
    return { receivedAt: m[0] as number, partition: m[1] as number, offset: m[2] as number };
  }

  private sign(body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('base64url').slice(0, 22);
  }
}

/** Parses and checks a query string; INVALID_QUERY listing every bad parameter. */
export function parseDecisionQuery(raw: Record<string, unknown>, cursors: CursorCodec): ParsedQuery {
  const errors: FieldError[] = [];
  const q: Record<string, unknown> = {};
  const s: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!KNOWN.has(k)) {
      errors.push({
        path: k,
        code: 'unknown_parameter',
        message: `unknown parameter; known: ${[...KNOWN].join(', ')}`,
      });
      continue;
    }
    if (typeof v !== 'string') {
      errors.push({ path: k, code: 'repeated', message: 'given more than once' });
      continue;
    }
    s[k] = v;
  }
  for (const k of ['portfolioId', 'strategyId', 'symbol'] as const) {
    const v = s[k];
    if (v === undefined) continue;
    if (ID.test(v)) q[k] = v;
    else errors.push({ path: k, code: 'pattern', message: 'not a valid identifier' });
  }
  for (const k of ['assetClass', 'type', 'verdict'] as const) {
    const v = s[k];
    if (v === undefined) continue;
    if ((enums[k] as readonly string[]).includes(v)) q[k] = v;
    else
      errors.push({ path: k, code: 'enum', message: `one of ${(enums[k] as readonly string[]).join(', ')}` });
  }
  if (s['minPriority'] !== undefined) q['minPriority'] = int(s['minPriority'], 'minPriority', 0, 9, errors);
  if (s['maxPriority'] !== undefined) q['maxPriority'] = int(s['maxPriority'], 'maxPriority', 0, 9, errors);
  if (
    typeof q['minPriority'] === 'number' &&
    typeof q['maxPriority'] === 'number' &&
    q['minPriority'] > q['maxPriority']
  ) {
    errors.push({ path: 'minPriority', code: 'range', message: 'is above maxPriority' });
  }
  if (s['from'] !== undefined) q['fromTime'] = parseTime(s['from'], 'from', errors);
  if (s['to'] !== undefined) q['toTime'] = parseTime(s['to'], 'to', errors);
  if (typeof q['fromTime'] === 'number' && typeof q['toTime'] === 'number' && q['fromTime'] >= q['toTime']) {
    errors.push({ path: 'from', code: 'range', message: 'must be before to' });
  }
  if (s['topic'] !== undefined) {
    const e = patternErrors(s['topic'], 'topic');
    if (e.length > 0) errors.push(...e);
    else q['topic'] = s['topic'];
  }
  if (s['revisions'] !== undefined) {
    if (s['revisions'] === 'latest' || s['revisions'] === 'all')
      q['latestOnly'] = s['revisions'] === 'latest';
    else errors.push({ path: 'revisions', code: 'enum', message: 'latest or all' });
  }
  const limit = s['limit'] === undefined ? DEFAULT_LIMIT : int(s['limit'], 'limit', 1, MAX_LIMIT, errors);
  const order = s['order'] ?? 'asc';
  if (order !== 'asc' && order !== 'desc')
    errors.push({ path: 'order', code: 'enum', message: 'asc or desc' });
  if (errors.length > 0) {
    throw new CdsError('INVALID_QUERY', `bad query parameters: ${errors.map((e) => e.path).join(', ')}`, {
      details: { errors },
    });
  }
  const query = q as DecisionQuery;
  const parsed: ParsedQuery = { query, limit: limit as number, order: order as 'asc' | 'desc' };
  if (s['cursor'] !== undefined)
    return { ...parsed, after: cursors.decode(s['cursor'], fingerprint(query, parsed.order)) };
  return parsed;
}

/** Identifies a query's filters and order (cursors are valid only for the same). */
export function fingerprint(q: DecisionQuery, order: string): string {
  return createHmac('sha256', 'q')
    .update(JSON.stringify([q, order]))
    .digest('base64url')
    .slice(0, 16);
}
