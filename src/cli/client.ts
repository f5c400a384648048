/** The HTTP client of the cds command: base URL and key from flags, CDS_URL / CDS_API_KEY, or the data directory. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where and as whom client commands talk to the service. */
export interface ClientOptions {
  readonly url: string;
  readonly key: string | undefined;
}

/** Resolves the client options from flags and environment. */
export function clientOptions(
  flags: Record<string, string | boolean | undefined>,
  env: Record<string, string | undefined>,
): ClientOptions {
  const url = (typeof flags['url'] === 'string' ? flags['url'] : env['CDS_URL']) ?? 'http://127.0.0.1:8480';
  let key = typeof flags['key'] === 'string' ? flags['key'] : env['CDS_API_KEY'];
  if (key === undefined) {
    const dir = (typeof flags['data-dir'] === 'string' ? flags['data-dir'] : env['CDS_DATA_DIR']) ?? './data';
    try {
      key = readFileSync(join(dir, 'admin.key'), 'utf8').trim();
    } catch {
      key = undefined;
    }
  }
  return { url: url.replace(/\/$/, ''), key };
}

/** An error answer of the service, as the CLI reports it. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`HTTP ${status}: ${JSON.stringify(body)}`);
  }
}

/** Calls the service and returns the parsed JSON answer; throws HttpError on a non-2xx answer. */
export async function call(
  opts: ClientOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const headers: Record<string, string> = {};
  if (opts.key) headers['authorization'] = `Bearer ${opts.key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${opts.url}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON: report the text */
  }
  if (!res.ok) throw new HttpError(res.status, parsed);
  return parsed;
}
