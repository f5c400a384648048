/**
 * `cds publish [FILE]`: JSON lines from a file or standard input, sent in batches; invalid lines are
 * reported with their line numbers and the rest is still published; retriable refusals (429, 503)
 * are retried after Retry-After. A progress line on a terminal, a JSON summary at the end.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { call, HttpError, type ClientOptions } from './client.ts';
import { Progress } from './progress.ts';

/** What `cds publish` did. */
export interface PublishSummary {
  lines: number;
  published: number;
  duplicates: number;
  invalid: number;
  failed: number;
  seconds: number;
  perSecond: number;
}

interface Item {
  line: number;
  value: unknown;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Publishes a JSON-lines stream; `report` receives one message per refused line. */
export async function publishLines(
  opts: ClientOptions,
  input: NodeJS.ReadableStream,
  o: { batch: number; concurrency: number; total?: number; report: (msg: string) => void },
): Promise<PublishSummary> {
  const started = performance.now();
  const s: PublishSummary = {
    lines: 0,
    published: 0,
    duplicates: 0,
    invalid: 0,
    failed: 0,
    seconds: 0,
    perSecond: 0,
  };
  const progress = new Progress('publishing', o.total);
  const inflight = new Set<Promise<void>>();
  let batch: Item[] = [];

  const send = async (items: Item[]): Promise<void> => {
    let pending = items;
    for (let attempt = 0; pending.length > 0; attempt++) {
      try {
        const res = (await call(
          opts,
          'POST',
          '/v1/decisions',
          `[${pending.map((i) => JSON.stringify(i.value)).join(',')}]`,
        )) as { results: { duplicate: boolean }[] };
        for (const r of res.results) {
          if (r.duplicate) s.duplicates++;
          else s.published++;
        }
        return;
      } catch (e) {
        if (!(e instanceof HttpError)) {
          if (attempt < 5) {
            await sleep(200 * 2 ** attempt);
            continue;
          }
          throw e;
        }
        const err = (
          e.body as {
            error?: {
              code?: string;
              details?: {
                items?: { index: number; errors: { path: string; message: string }[] }[];
                errors?: { path: string; message: string }[];
              };
            };
          }
        ).error;
        if (e.status === 429 || e.status === 503) {
          await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
          continue;
        }
        const bad = new Set<number>();
        if (err?.code === 'VALIDATION_FAILED' && err.details?.items) {
          for (const it of err.details.items) {
            const item = pending[it.index] as Item;
            bad.add(it.index);
            s.invalid++;
            o.report(
              `line ${item.line}: ${it.errors.map((x) => `${x.path.replace(/^\/\d+/, '') || '(decision)'}: ${x.message}`).join('; ')}`,
            );
          }
        } else if (pending.length > 1) {
          // A refusal of the batch as a whole (a conflict, a scope): find the culprits one by one.
          for (const it of pending) await send([it]);
          return;
        } else {
          const only = pending[0] as Item;
          s.failed++;
          o.report(
            `line ${only.line}: ${err?.code ?? e.status}: ${JSON.stringify(err?.details?.errors ?? err ?? e.body)}`,
          );
          return;
        }
        pending = pending.filter((_, i) => !bad.has(i));
      }
    }
  };

  const flush = async () => {
    if (batch.length === 0) return;
    const items = batch;
    batch = [];
    const p = send(items).finally(() => {
      inflight.delete(p);
      progress.update(s.published + s.duplicates + s.invalid + s.failed);
    });
    inflight.add(p);
    if (inflight.size >= o.concurrency) await Promise.race(inflight);
  };

  const rl = createInterface({ input, crlfDelay: Infinity });
  for await (const text of rl) {
    s.lines++;
    if (text.trim().length === 0) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      s.invalid++;
      o.report(`line ${s.lines}: not JSON: ${(e as Error).message}`);
      continue;
    }
    batch.push({ line: s.lines, value });
    if (batch.length >= o.batch) await flush();
  }
  await flush();
  await Promise.all(inflight);
  progress.update(Number.MAX_SAFE_INTEGER);
  progress.finish();
  s.seconds = Math.round((performance.now() - started) / 10) / 100;
  s.perSecond = Math.round((s.published + s.duplicates) / Math.max(0.01, s.seconds));
  return s;
}

/** Opens the input of `cds publish` and counts its lines for the progress bar when it is a file. */
export async function openInput(
  file: string | undefined,
): Promise<{ stream: NodeJS.ReadableStream; total?: number }> {
  if (file === undefined || file === '-') return { stream: process.stdin };
  await stat(file); // a missing file is reported before anything is sent
  let total = 0;
  for await (const chunk of createReadStream(file)) for (const b of chunk as Buffer) if (b === 10) total++;
  return { stream: createReadStream(file), total };
}
