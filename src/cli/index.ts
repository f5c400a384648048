/**
 * The `cds` command. main.ts hands it argv and env; nothing else here reads them.
 *
 *   cds serve                          run the service (the default command)
 *   cds config print                   print the effective configuration (secrets masked)
 *   cds publish [FILE|-]               publish JSON lines (batched; progress on a terminal; summary)
 *   cds get DECISION_ID [--revision N]
 *   cds query [--portfolioId X ...] [--count]
 *   cds explain DECISION_ID [--revision N] [--json]
 *   cds keys create --name N --scope S [--scope S ...]
 *   cds keys list | cds keys revoke ID
 *   cds verify-audit [--data-dir DIR | --url URL]
 *   cds backup --to DIR [--offline --data-dir D]    cds restore --from DIR --data-dir NEW
 *   cds tail SUBSCRIPTION [--grpc HOST:PORT] [--count N] [--tls | --ca FILE] [--cert FILE --cert-key FILE]
 *   cds replay --topic PATTERN [--from TIME|POSITION] [--to TIME|POSITION] [--rate N] [--out FILE]
 *
 * Client commands use --url / CDS_URL (default http://127.0.0.1:8480) and --key / CDS_API_KEY
 * (default: the admin key file in the data directory).
 */
import { parseArgs } from 'node:util';
import { loadConfig, printableConfig } from '../config/index.ts';
import { CdsError } from '../errors/index.ts';
import { call, clientOptions, HttpError } from './client.ts';
import { backupCommand, restoreCommand } from './backup.ts';
import { explainDecision } from './explain.ts';
import { openInput, publishLines } from './publish.ts';
import { replayCommand } from './replay.ts';
import { serve } from './serve.ts';
import { tail, tailTls } from './tail.ts';
import { verifyAuditOffline } from './verify-audit.ts';
import type { CliIo } from './io.ts';

export type { CliIo } from './io.ts';

const QUERY_FLAGS = [
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
  'revisions',
  'order',
] as const;

/** Splits `--a.b=c` flags meant for configuration from the rest. */
function configFlags(args: readonly string[]): { flags: Record<string, string>; rest: string[] } {
  const flags: Record<string, string> = {};
  const rest: string[] = [];
  for (const a of args) {
    const m = /^--([A-Za-z][\w.]*)=(.*)$/s.exec(a);
    if (m) flags[m[1] as string] = m[2] as string;
    else rest.push(a);
  }
  return { flags, rest };
}

/** Runs one command; resolves with the process exit code. */
export async function runCli(io: CliIo): Promise<number> {
  const [command = 'serve', ...args] = io.argv;
  try {
    switch (command) {
      case 'serve': {
        const { flags, rest } = configFlags(args);
        if (rest.length > 0)
          throw new CdsError(
            'CONFIG_INVALID',
            `serve: unexpected arguments ${rest.join(' ')}; flags are --key.path=value`,
          );
        return await serve(loadConfig({ env: io.env, flags }), io);
      }
      case 'config': {
        const { flags, rest } = configFlags(args);
        if (rest[0] !== 'print' || rest.length !== 1) throw usage('cds config print [--key.path=value ...]');
        io.stdout(JSON.stringify(printableConfig(loadConfig({ env: io.env, flags })), null, 2));
        return 0;
      }
      case 'publish': {
        const { values, positionals } = parseArgs({
          args: [...args],
          allowPositionals: true,
          options: {
            url: { type: 'string' },
            key: { type: 'string' },
            'data-dir': { type: 'string' },
            batch: { type: 'string', default: '1000' },
            concurrency: { type: 'string', default: '1' },
          },
        });
        const batch = positiveInt(values.batch, 'batch');
        const concurrency = positiveInt(values.concurrency, 'concurrency');
        const input = await openInput(positionals[0]);
        const summary = await publishLines(clientOptions(values, io.env), input.stream, {
          batch,
          concurrency,
          ...(input.total === undefined ? {} : { total: input.total }),
          report: io.stderr,
        });
        io.stdout(JSON.stringify(summary));
        return summary.invalid + summary.failed > 0 ? 1 : 0;
      }
      case 'get': {
        const { values, positionals } = parseArgs({
          args: [...args],
          allowPositionals: true,
          options: {
            url: { type: 'string' },
            key: { type: 'string' },
            'data-dir': { type: 'string' },
            revision: { type: 'string' },
          },
        });
        if (positionals.length !== 1) throw usage('cds get DECISION_ID [--revision N]');
        const q = values.revision === undefined ? '' : `?revision=${encodeURIComponent(values.revision)}`;
        io.stdout(
          JSON.stringify(
            await call(
              clientOptions(values, io.env),
              'GET',
              `/v1/decisions/${encodeURIComponent(positionals[0] as string)}${q}`,
            ),
            null,
            2,
          ),
        );
        return 0;
      }
      case 'explain': {
        const { values, positionals } = parseArgs({
          args: [...args],
          allowPositionals: true,
          options: {
            url: { type: 'string' },
            key: { type: 'string' },
            'data-dir': { type: 'string' },
            revision: { type: 'string' },
            json: { type: 'boolean' },
          },
        });
        if (positionals.length !== 1) throw usage('cds explain DECISION_ID [--revision N] [--json]');
        io.stdout(
          await explainDecision(clientOptions(values, io.env), positionals[0] as string, {
            ...(values.revision === undefined ? {} : { revision: values.revision }),
            json: values.json === true,
          }),
        );
        return 0;
      }
      case 'query': {
        const options = Object.fromEntries(QUERY_FLAGS.map((f) => [f, { type: 'string' as const }]));
        const { values } = parseArgs({
          args: [...args],
          options: {
            ...options,
            url: { type: 'string' },
            key: { type: 'string' },
            'data-dir': { type: 'string' },
            count: { type: 'boolean' },
            limit: { type: 'string' },
          },
        });
        const opts = clientOptions(values, io.env);
        const params = new URLSearchParams();
        const given = values as Record<string, string | boolean | undefined>;
        for (const f of QUERY_FLAGS) if (typeof given[f] === 'string') params.set(f, given[f] as string);
        params.set('limit', typeof values.limit === 'string' ? values.limit : '1000');
        let n = 0;
        for (let cursor: string | null = null; ;) {
          if (cursor) params.set('cursor', cursor);
          const page = (await call(opts, 'GET', `/v1/decisions?${params}`)) as {
            items: unknown[];
            nextCursor: string | null;
          };
          n += page.items.length;
          if (!values.count) for (const it of page.items) io.stdout(JSON.stringify(it));
          if (page.nextCursor === null) break;
          cursor = page.nextCursor;
        }
        if (values.count) io.stdout(String(n));
        return 0;
      }
      case 'keys': {
        const [sub, ...rest] = args;
        const { values, positionals } = parseArgs({
          args: rest,
          allowPositionals: true,
          options: {
            url: { type: 'string' },
            key: { type: 'string' },
            'data-dir': { type: 'string' },
            name: { type: 'string' },
            scope: { type: 'string', multiple: true },
          },
        });
        const opts = clientOptions(
          { url: values.url, key: values.key, 'data-dir': values['data-dir'] },
          io.env,
        );
        if (sub === 'create') {
          if (!values.name || !values.scope)
            throw usage('cds keys create --name NAME --scope ACTION:PATTERN [--scope ...]');
          io.stdout(
            JSON.stringify(
              await call(opts, 'POST', '/v1/keys', { name: values.name, scopes: values.scope }),
              null,
              2,
            ),
          );
          return 0;
        }
        if (sub === 'list') {
          io.stdout(JSON.stringify(await call(opts, 'GET', '/v1/keys'), null, 2));
          return 0;
        }
        if (sub === 'revoke' && positionals.length === 1) {
          io.stdout(
            JSON.stringify(
              await call(opts, 'DELETE', `/v1/keys/${encodeURIComponent(positionals[0] as string)}`),
              null,
              2,
            ),
          );
          return 0;
        }
        throw usage('cds keys create|list|revoke ...');
      }
      case 'tail': {
        const { values, positionals } = parseArgs({
          args: [...args],
          allowPositionals: true,
          options: {
            grpc: { type: 'string', default: '127.0.0.1:8481' },
            key: { type: 'string' },
            'data-dir': { type: 'string' },
            count: { type: 'string' },
            tls: { type: 'boolean' },
            ca: { type: 'string' },
            cert: { type: 'string' },
            'cert-key': { type: 'string' },
            'server-name': { type: 'string' },
          },
        });
        if (positionals.length !== 1)
          throw usage(
            'cds tail SUBSCRIPTION [--grpc HOST:PORT] [--count N] [--tls | --ca FILE] [--cert FILE --cert-key FILE] [--server-name NAME]',
          );
        const { key } = clientOptions(values, io.env);
        if (key === undefined)
          throw new CdsError('UNAUTHENTICATED', 'no API key: --key, CDS_API_KEY or admin.key');
        return await tail(
          {
            address: values.grpc,
            token: key,
            subscription: positionals[0] as string,
            tls: tailTls(values),
            count: values.count === undefined ? undefined : positiveInt(values.count, 'count'),
          },
          io,
        );
      }
      case 'verify-audit': {
        const { values } = parseArgs({
          args: [...args],
          options: { url: { type: 'string' }, key: { type: 'string' }, 'data-dir': { type: 'string' } },
        });
        const result =
          values.url !== undefined
            ? ((await call(clientOptions(values, io.env), 'GET', '/v1/audit/verify')) as { ok: boolean })
            : await verifyAuditOffline(values['data-dir'] ?? io.env['CDS_DATA_DIR'] ?? './data');
        io.stdout(JSON.stringify(result));
        if (!result.ok) io.stderr('cds verify-audit: AUDIT_CHAIN_BROKEN: the audit trail was altered');
        return result.ok ? 0 : 1;
      }
      case 'backup':
        return await backupCommand(args, io);
      case 'restore':
        return await restoreCommand(args, io);
      case 'replay':
        return await replayCommand(args, io);
      case 'help':
      case '--help':
      case '-h':
        io.stdout(
          'usage: cds serve | config print | publish [FILE] | get ID | explain ID | query [--filters] | keys create|list|revoke | tail SUBSCRIPTION | replay --topic P | verify-audit',
        );
        return 0;
      default:
        throw usage(`unknown command '${command}'; try cds help`);
    }
  } catch (e) {
    if (e instanceof HttpError) {
      io.stderr(`cds ${command}: ${e.message}`);
      return 1;
    }
    if (e instanceof CdsError) {
      io.stderr(`cds ${command}: ${e.code}: ${e.message}`);
      return 2;
    }
    if (e instanceof TypeError && (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      io.stderr(`cds ${command}: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

function usage(text: string): CdsError {
  return new CdsError('VALIDATION_FAILED', `usage: ${text}`);
}

function positiveInt(v: string | undefined, name: string): number {
  if (v !== undefined && /^[1-9]\d{0,5}$/.test(v)) return Number(v);
  throw new CdsError('VALIDATION_FAILED', `--${name} must be a positive integer`);
}
