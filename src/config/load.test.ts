import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isCdsError } from '../errors/index.ts';
import { loadConfig } from './load.ts';
import { ENV_VARS, schemaAt } from './schema.ts';

describe('loadConfig', () => {
  it('applies defaults, then environment, then flags, and freezes the result', () => {
    const c = loadConfig({
      env: { CDS_HTTP_PORT: '0', CDS_DATA_DIR: '/tmp/x', HOME: '/root' },
      flags: { 'http.port': '9000' },
    });
    assert.equal(c.http.port, 9000);
    assert.equal(c.dataDir, '/tmp/x');
    assert.equal(c.ingest.topicTemplate, 'decisions.{instrument.assetClass}.{portfolioId}');
    assert.throws(() => ((c.http as { port: number }).port = 1));
  });

  it('refuses unknown CDS_* variables, unknown flags and unknown keys, naming them', () => {
    for (const src of [
      { env: { CDS_HTTP_PROT: '1' } },
      { flags: { 'http.prot': '1' } },
      { overrides: { http: { prot: 1 } } },
    ]) {
      assert.throws(
        () => loadConfig(src),
        (e: unknown) => isCdsError(e, 'CONFIG_INVALID') && /prot/i.test(e.message),
      );
    }
  });

  it('refuses values of the wrong type or range with the key named', () => {
    assert.throws(
      () => loadConfig({ env: { CDS_HTTP_PORT: 'eighty' } }),
      (e: unknown) => isCdsError(e, 'CONFIG_INVALID') && /CDS_HTTP_PORT/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ env: { CDS_HTTP_PORT: '70000' } }),
      (e: unknown) => isCdsError(e, 'CONFIG_INVALID') && /http\.port/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ env: { CDS_LOG: 'kafka' } }),
      (e: unknown) => isCdsError(e, 'CONFIG_INVALID') && /log\.engine/.test(e.message),
    );
  });

  it('ledger retention: defaults, variables, a limit out of range refused, an unknown ledger key refused', () => {
    const d = loadConfig({ env: {} });
    assert.deepEqual({ ...d.ledger }, { retentionMs: 604_800_000, intervalMs: 300_000 });
    const c = loadConfig({
      env: {
        CDS_LEDGER_RETENTION_MS: '0',
        CDS_LEDGER_MAX_RECORDS: '1000000',
        CDS_LEDGER_INTERVAL_MS: '5000',
      },
    });
    assert.deepEqual({ ...c.ledger }, { retentionMs: 0, maxRecords: 1_000_000, intervalMs: 5_000 });
    assert.throws(
      () => loadConfig({ env: { CDS_LEDGER_MAX_RECORDS: '0' } }),
      (e: unknown) => isCdsError(e, 'CONFIG_INVALID') && /ledger\.maxRecords/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ flags: { 'ledger.intervalMs': '10' } }),
      (e: unknown) => isCdsError(e, 'CONFIG_INVALID') && /ledger\.intervalMs/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ overrides: { ledger: { retentionDays: 7 } } }),
      (e: unknown) => isCdsError(e, 'CONFIG_INVALID') && /retentionDays/.test(e.message),
    );
  });

  it('pulsar.checkpointEvery: default 1,000, 0 allowed, negative, fractional or not a number refused, naming the key or the variable', () => {
    assert.equal(loadConfig({ env: {} }).pulsar.checkpointEvery, 1000);
    assert.equal(loadConfig({ env: { CDS_PULSAR_CHECKPOINT_EVERY: '0' } }).pulsar.checkpointEvery, 0);
    for (const bad of ['-1', '2.5', 'often'])
      assert.throws(
        () => loadConfig({ env: { CDS_PULSAR_CHECKPOINT_EVERY: bad } }),
        (e: unknown) =>
          isCdsError(e, 'CONFIG_INVALID') &&
          /pulsar\.checkpointEvery|CDS_PULSAR_CHECKPOINT_EVERY/.test(e.message),
        bad,
      );
  });

  it('maps every CDS_* variable to an existing key', () => {
    for (const [name, key] of Object.entries(ENV_VARS)) assert.ok(schemaAt(key), `${name} -> ${key}`);
  });

  it('reads a JSON configuration file and reports an unreadable or invalid one', () => {
    assert.throws(
      () => loadConfig({ env: { CDS_CONFIG: '/nonexistent/cds.json' } }),
      (e: unknown) => isCdsError(e, 'CONFIG_INVALID') && /cannot read/.test(e.message),
    );
  });
});
