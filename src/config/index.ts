export { ConfigSchema, ENV_VARS, type Config } from './schema.ts';
export { loadConfig, printableConfig, type ConfigSources } from './load.ts';
