/**
 * Loads the configuration: defaults, then the file (CDS_CONFIG or --config), then CDS_* variables,
 * then flags (`--http.port=0`). Unknown keys, variables or flags are errors naming them; the result
 * is validated and frozen.
 */
import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { CdsError, type FieldError } from '../errors/index.ts';
import { ConfigSchema, ENV_NON_KEYS, ENV_TEST_PREFIX, ENV_VARS, schemaAt, type Config } from './schema.ts';

/** Where configuration values come from (passed in: only main.ts reads the real argv and env). */
export interface ConfigSources {
  /** Environment variables (CDS_* are read). */
  env?: Record<string, string | undefined>;
  /** `--key.path=value` flags. */
  flags?: Record<string, string>;
  /** An explicit configuration object (tests), applied after the file. */
  overrides?: Record<string, unknown>;
}

function configError(errors: FieldError[]): CdsError {
  const first = errors[0];
  return new CdsError(
    'CONFIG_INVALID',
    `invalid configuration: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
    { details: { errors, ...(first ? {} : {}) } },
  );
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let o = target;
  for (const p of parts.slice(0, -1)) {
    const next = o[p];
    if (next === undefined || next === null || typeof next !== 'object') o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts[parts.length - 1] as string] = value;
}

/** Converts a string from the environment or a flag to the type the key's schema wants. */
function coerce(path: string, raw: string, source: string): unknown {
  const schema = schemaAt(path);
  if (schema === undefined)
    throw configError([
      { path: source, code: 'unknown_key', message: `unknown configuration key '${path}'` },
    ]);
  const t = (schema as { type?: string }).type;
  if (t === 'integer' || t === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) {
      throw configError([{ path: source, code: 'type', message: `'${raw}' is not a number` }]);
    }
    return n;
  }
  if (t === 'boolean') {
    if (raw !== 'true' && raw !== 'false')
      throw configError([{ path: source, code: 'type', message: `'${raw}' is not true or false` }]);
    return raw === 'true';
  }
  return raw;
}

/** Reads a JSON configuration file. */
function readFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new CdsError(
      'CONFIG_INVALID',
      `cannot read configuration file ${file}: ${(cause as Error).message}`,
      { cause },
    );
  }
  try {
    const v: unknown = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (cause) {
    throw new CdsError(
      'CONFIG_INVALID',
      `configuration file ${file} is not a JSON object: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** Builds, validates and freezes the effective configuration. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? {};
  const flags = { ...(sources.flags ?? {}) };
  const raw: Record<string, unknown> = {};
  const file = flags['config'] ?? env['CDS_CONFIG'];
  delete flags['config'];
  if (file !== undefined) Object.assign(raw, readFile(file));
  if (sources.overrides) deepMerge(raw, sources.overrides);
  const unknown: FieldError[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (
      !name.startsWith('CDS_') ||
      value === undefined ||
      ENV_NON_KEYS.has(name) ||
      name.startsWith(ENV_TEST_PREFIX)
    )
      continue;
    const key = ENV_VARS[name];
    if (key === undefined) {
      unknown.push({ path: name, code: 'unknown_variable', message: 'is not a cds configuration variable' });
      continue;
    }
    setPath(raw, key, coerce(key, value, name));
  }
  for (const [name, value] of Object.entries(flags)) {
    if (schemaAt(name) === undefined) {
      unknown.push({ path: `--${name}`, code: 'unknown_flag', message: 'is not a configuration key' });
      continue;
    }
    setPath(raw, name, coerce(name, value, `--${name}`));
  }
  if (unknown.length > 0) throw configError(unknown);
  const withDefaults = Value.Default(ConfigSchema, raw);
  if (!Value.Check(ConfigSchema, withDefaults)) {
    const errors = [...Value.Errors(ConfigSchema, withDefaults)].map((e) => ({
      path: e.path.slice(1).replaceAll('/', '.') || '(root)',
      code: e.message.includes('Unexpected property') ? 'unknown_key' : 'invalid',
      message: e.message,
    }));
    throw configError(errors);
  }
  return deepFreeze(withDefaults as Config);
}

function deepMerge(target: Record<string, unknown>, src: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(src)) {
    const cur = target[k];
    if (
      v &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      cur &&
      typeof cur === 'object' &&
      !Array.isArray(cur)
    ) {
      deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>);
    } else target[k] = v;
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** The effective configuration as printed by `cds config print` (secrets masked). */
export function printableConfig(config: Config): Record<string, unknown> {
  const copy = structuredClone(config) as Record<string, unknown> & { security: Record<string, unknown> };
  if (copy.security.adminKey !== undefined) copy.security.adminKey = '***';
  const pg = copy['postgres'] as { url?: string };
  if (pg.url !== undefined) pg.url = pg.url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
  return copy;
}
