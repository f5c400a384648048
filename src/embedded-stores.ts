/**
 * The LMDB environments of an embedded data directory, listed once (ADR 0014): the composition root
 * (app.ts) opens them one by one beside their PostgreSQL alternatives, `cds backup --offline` opens
 * them all, and both hand them to a backup in this order. Part of the composition root: like app.ts,
 * it picks adapters.
 */
import { LmdbRetentionStore } from './adapters/embedded/retention/index.ts';
import { LmdbRuleStore } from './adapters/embedded/rules/index.ts';
import { LmdbStateStore } from './adapters/embedded/state/index.ts';
import { LmdbSubscriptionStore } from './adapters/embedded/subscriptions/index.ts';
import { LmdbWebhookStore } from './adapters/embedded/webhooks/index.ts';
import type { BackupParts, EnvSource, LogSource } from './backup/index.ts';
import { LmdbLedgerStore } from './ledger/index.ts';

/**
 * Each store by its folder in the data directory (and in a backup), in backup order: the state store,
 * whose snapshot names the index files, first.
 */
const STORES = {
  state: { is: (s: unknown) => s instanceof LmdbStateStore, open: (d: string) => LmdbStateStore.open(d) },
  subscriptions: {
    is: (s: unknown) => s instanceof LmdbSubscriptionStore,
    open: (d: string) => LmdbSubscriptionStore.open(d),
  },
  rules: { is: (s: unknown) => s instanceof LmdbRuleStore, open: (d: string) => LmdbRuleStore.open(d) },
  webhooks: {
    is: (s: unknown) => s instanceof LmdbWebhookStore,
    open: (d: string) => LmdbWebhookStore.open(d),
  },
  ledger: { is: (s: unknown) => s instanceof LmdbLedgerStore, open: (d: string) => LmdbLedgerStore.open(d) },
  retention: {
    is: (s: unknown) => s instanceof LmdbRetentionStore,
    open: (d: string) => LmdbRetentionStore.open(d),
  },
} as const;

type Folder = keyof typeof STORES;

/** The embedded stores of one data directory, by folder. */
export type EmbeddedStores = { readonly [F in Folder]: Awaited<ReturnType<(typeof STORES)[F]['open']>> };

/** The folders of the embedded stores, in backup order. */
export const EMBEDDED_FOLDERS = Object.keys(STORES) as readonly Folder[];

/**
 * The stores as embedded ones, or undefined when one of them is not (cluster mode keeps them in
 * PostgreSQL, which `cds backup` does not cover).
 */
export function asEmbedded(stores: { readonly [F in Folder]: unknown }): EmbeddedStores | undefined {
  return EMBEDDED_FOLDERS.every((f) => STORES[f].is(stores[f])) ? (stores as EmbeddedStores) : undefined;
}

/**
 * Opens every embedded store of `dataDir` (offline commands); on a failure the ones already opened
 * are closed again and the error is thrown.
 */
export async function openEmbeddedStores(dataDir: string): Promise<EmbeddedStores> {
  const open: Partial<Record<Folder, EmbeddedStores[Folder]>> = {};
  try {
    for (const f of EMBEDDED_FOLDERS) open[f] = await STORES[f].open(dataDir);
    return open as EmbeddedStores;
  } catch (e) {
    await closeEmbeddedStores(open);
    throw e;
  }
}

/** Closes the stores (those given), the last opened first; failures to close are ignored. */
export async function closeEmbeddedStores(
  stores: Partial<Record<Folder, { close(): Promise<void> }>>,
): Promise<void> {
  for (const f of [...EMBEDDED_FOLDERS].reverse()) await stores[f]?.close().catch(() => undefined);
}

/** What a backup of an embedded data directory copies: the log, every store, the admin key. */
export function embeddedBackupParts(dataDir: string, log: LogSource, stores: EmbeddedStores): BackupParts {
  const envs: EnvSource[] = EMBEDDED_FOLDERS.map((folder) => ({
    folder,
    backup: (d: string) => stores[folder].backup(d),
  }));
  return { dataDir, log, envs, files: ['admin.key'] };
}
