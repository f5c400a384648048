/** `cds verify-audit` on a data directory (service stopped): reads the whole trail and checks every link. */
import { resolve } from 'node:path';
import { LmdbStateStore } from '../adapters/embedded/state/index.ts';
import { AuditTrail, type AuditVerification } from '../security/index.ts';

/** Verifies the audit trail stored in a data directory. */
export async function verifyAuditOffline(dataDir: string): Promise<AuditVerification> {
  const state = await LmdbStateStore.open(resolve(dataDir));
  try {
    return await new AuditTrail(state.audit, () => undefined).verify();
  } finally {
    await state.close();
  }
}
