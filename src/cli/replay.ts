/**
 * `cds replay --topic PATTERN [--from T|P] [--to T|P] [--rate N] [--out FILE]`: an ad-hoc reader of
 * the log (ADR 0019). Streams GET /v1/topics/{topic}/decisions to a file or standard output as NDJSON,
 * at most N lines a second when asked (the client reads no faster, so the server reads no faster
 * either), with a progress bar on standard error (on a terminal) measured in log positions.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { CdsError } from '../errors/index.ts';
import { clientOptions, HttpError, type ClientOptions } from './client.ts';
import type { CliIo } from './io.ts';
import { Progress } from './progress.ts';

/** What `cds replay` asks for. */
export interface ReplayOptions {
  readonly topic: string;
  readonly from?: string;
  readonly to?: string;
  /** Most lines per second (client side); unlimited when absent. */
  readonly rate?: number;
  /** File to write; standard output when absent. */
  readonly out?: string;
}

/** What `cds replay` did. */
export interface ReplaySummary {
  lines: number;
  /** The range the service resolved (positions, one per partition). */
  from: string;
  to: string;
  epoch: string;
  seconds: number;
  perSecond: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const POSITION = /"position":"(\d+):(\d+)"/;

/** Per partition, the offsets of a `P:O,P:O` header. */
function offsets(header: string | null): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of (header ?? '').split(',').filter((x) => x.length > 0)) {
    const [part, off] = p.split(':').map(Number) as [number, number];
    m.set(part, off);
  }
  return m;
}

/** Streams the range to `o.out` (or `stdout`); resolves with a summary. Throws HttpError on a refusal. */
export async function replay(
  opts: ClientOptions,
  o: ReplayOptions,
  stdout: NodeJS.WritableStream = process.stdout,
): Promise<ReplaySummary> {
  const started = performance.now();
  const q = new URLSearchParams();
  if (o.from !== undefined) q.set('from', o.from);
  if (o.to !== undefined) q.set('to', o.to);
  const res = await fetch(
    `${opts.url}/v1/topics/${encodeURIComponent(o.topic)}/decisions${q.size > 0 ? `?${q}` : ''}`,
    { headers: opts.key ? { authorization: `Bearer ${opts.key}` } : {} },
  );
  if (!res.ok || res.body === null) {
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON: report the text */
    }
    throw new HttpError(res.status, body);
  }
  const from = offsets(res.headers.get('x-cds-from'));
  const to = offsets(res.headers.get('x-cds-to'));
  let total = 0;
  for (const [p, f] of from) total += (to.get(p) ?? f) - f;
  const progress = new Progress('replaying', total);
  const out = o.out === undefined ? stdout : createWriteStream(o.out);
  const s: ReplaySummary = {
    lines: 0,
    from: res.headers.get('x-cds-from') ?? '',
    to: res.headers.get('x-cds-to') ?? '',
    epoch: res.headers.get('x-cds-epoch') ?? '',
    seconds: 0,
    perSecond: 0,
  };
  const done = new Map<number, number>();
  let scanned = 0;
  const t0 = performance.now();
  const lines = createInterface({ input: Readable.fromWeb(res.body as never), crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.length === 0) continue;
      if (line.startsWith('{"error"')) throw new HttpError(res.status, JSON.parse(line));
      if (!out.write(`${line}\n`)) await once(out, 'drain');
      s.lines++;
      const m = POSITION.exec(line.slice(0, 400));
      if (m !== null) {
        const p = Number(m[1]);
        const prev = done.get(p) ?? from.get(p) ?? 0;
        const now = Number(m[2]) + 1;
        scanned += now - prev;
        done.set(p, now);
      }
      progress.update(scanned);
      if (o.rate !== undefined) {
        const ahead = t0 + (s.lines / o.rate) * 1000 - performance.now();
        if (ahead > 5) await sleep(ahead);
      }
    }
  } finally {
    lines.close();
    if (out !== stdout) await new Promise<void>((r) => (out as NodeJS.WritableStream).end(() => r()));
  }
  progress.update(total);
  progress.finish();
  s.seconds = Math.round((performance.now() - started) / 10) / 100;
  s.perSecond = Math.round(s.lines / Math.max(0.01, s.seconds));
  return s;
}

const USAGE =
  'usage: cds replay --topic PATTERN [--from TIME|POSITION] [--to TIME|POSITION] [--rate N] [--out FILE]';

/** `cds replay ...`: the summary goes to stdout when the lines go to a file, to stderr otherwise. */
export async function replayCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      url: { type: 'string' },
      key: { type: 'string' },
      'data-dir': { type: 'string' },
      topic: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      rate: { type: 'string' },
      out: { type: 'string' },
    },
  });
  if (values.topic === undefined) throw new CdsError('VALIDATION_FAILED', USAGE);
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0))
    throw new CdsError('VALIDATION_FAILED', `--rate must be a positive number of lines per second; ${USAGE}`);
  const summary = await replay(clientOptions(values, io.env), {
    topic: values.topic,
    ...(values.from === undefined ? {} : { from: values.from }),
    ...(values.to === undefined ? {} : { to: values.to }),
    ...(rate === undefined ? {} : { rate }),
    ...(values.out === undefined ? {} : { out: values.out }),
  });
  (values.out === undefined ? io.stderr : io.stdout)(JSON.stringify(summary));
  return 0;
}
