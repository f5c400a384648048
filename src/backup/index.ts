/** Backup and restore of the embedded data directory (ADR 0014). */
export {
  writeBackup,
  type BackupParts,
  type BackupOptions,
  type BackupProgress,
  type EnvSource,
  type LogSource,
} from './backup.ts';
export { restoreBackup, type ReEpoched, type RestoreResult } from './restore.ts';
export { readManifest, MANIFEST_FILE, type Manifest, type ManifestFile } from './manifest.ts';
export { BackupService, type BackupView } from './service.ts';
