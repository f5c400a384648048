/** Validation of a webhook registration body (ADR 0010): every failing field reported with its path. */
import { CdsError, type FieldError } from '../../errors/index.ts';
import type { WebhookBackoff, WebhookDisablePolicy } from '../../state/webhooks-port.ts';
import { secretKey } from './signing.ts';

/** A validated registration. */
export interface WebhookInput {
  readonly url: string;
  readonly secret: string | undefined;
  readonly maxConcurrency: number;
  readonly timeoutMs: number;
  readonly batchSize: number;
  readonly backoff: WebhookBackoff;
  readonly disableAfter: WebhookDisablePolicy;
}

/** Defaults of every optional field. */
export const WEBHOOK_DEFAULTS = Object.freeze({
  maxConcurrency: 4,
  timeoutMs: 10_000,
  batchSize: 100,
  backoff: Object.freeze({ initialMs: 500, maxMs: 60_000 }),
  disableAfter: Object.freeze({ failures: 20, periodMs: 300_000 }),
});

const TOP = new Set(['url', 'secret', 'maxConcurrency', 'timeoutMs', 'batchSize', 'backoff', 'disableAfter']);

/** Parses a POST body; throws VALIDATION_FAILED listing every bad field. */
export function parseWebhook(body: unknown): WebhookInput {
  const errors: FieldError[] = [];
  const err = (path: string, code: string, message: string) => errors.push({ path, code, message });
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new CdsError('VALIDATION_FAILED', 'the body must be a JSON object', {
      details: { errors: [{ path: '', code: 'type', message: 'a JSON object' }] },
    });
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!TOP.has(k)) err(`/${k}`, 'unknown_field', 'not a webhook field');

  const url = b['url'];
  if (url === undefined) err('/url', 'required', 'the http(s) URL to POST to');
  else if (typeof url !== 'string') err('/url', 'type', 'a string');
  else if (url.length > 2048) err('/url', 'too_large', 'at most 2048 characters');
  else {
    let u: URL | undefined;
    try {
      u = new URL(url);
    } catch {
      err('/url', 'format', 'not an absolute URL');
    }
    if (u !== undefined) {
      if (u.protocol !== 'http:' && u.protocol !== 'https:')
        err('/url', 'enum', `scheme ${u.protocol.slice(0, -1)} is not allowed: http or https`);
      else if (u.username !== '' || u.password !== '')
        err('/url', 'not_allowed', 'credentials in the URL are not allowed (the request is signed)');
    }
  }
  const secret = b['secret'];
  if (secret !== undefined && (typeof secret !== 'string' || secretKey(secret) === undefined))
    err('/secret', 'format', 'whsec_ followed by the base64 of 24 to 64 bytes');

  const int = (v: unknown, path: string, min: number, max: number, dflt: number): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v)) err(path, 'type', 'an integer');
    else if (v < min) err(path, 'too_small', `at least ${min}`);
    else if (v > max) err(path, 'too_large', `at most ${max}`);
    else return v;
    return dflt;
  };
  const obj = (v: unknown, path: string, keys: readonly string[]): Record<string, unknown> => {
    if (v === undefined) return {};
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      err(path, 'type', 'an object');
      return {};
    }
    for (const k of Object.keys(v))
      if (!keys.includes(k)) err(`${path}/${k}`, 'unknown_field', keys.join(', '));
    return v as Record<string, unknown>;
  };
  const d = WEBHOOK_DEFAULTS;
  const bo = obj(b['backoff'], '/backoff', ['initialMs', 'maxMs']);
  const da = obj(b['disableAfter'], '/disableAfter', ['failures', 'periodMs']);
  const out: WebhookInput = {
    url: typeof url === 'string' ? url : '',
    secret: typeof secret === 'string' ? secret : undefined,
    maxConcurrency: int(b['maxConcurrency'], '/maxConcurrency', 1, 64, d.maxConcurrency),
    timeoutMs: int(b['timeoutMs'], '/timeoutMs', 100, 120_000, d.timeoutMs),
    batchSize: int(b['batchSize'], '/batchSize', 1, 1000, d.batchSize),
    backoff: {
      initialMs: int(bo['initialMs'], '/backoff/initialMs', 10, 600_000, d.backoff.initialMs),
      maxMs: int(bo['maxMs'], '/backoff/maxMs', 10, 3_600_000, d.backoff.maxMs),
    },
    disableAfter: {
      failures: int(da['failures'], '/disableAfter/failures', 1, 1_000_000, d.disableAfter.failures),
      periodMs: int(da['periodMs'], '/disableAfter/periodMs', 0, 30 * 86_400_000, d.disableAfter.periodMs),
    },
  };
  if (out.backoff.maxMs < out.backoff.initialMs)
    err('/backoff/maxMs', 'too_small', 'at least backoff.initialMs');
  if (errors.length > 0)
    throw new CdsError(
      'VALIDATION_FAILED',
      `invalid webhook: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`,
      {
        details: { errors },
      },
    );
  return out;
}
