// Runs the EventLog contract suite on SegmentLog, with small segments so that trim and roll happen.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventLogContract } from '../../../log/contract.ts';
import { SegmentLog } from './segment-log.ts';

eventLogContract('SegmentLog', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cds-seglog-'));
  const opts = { segmentBytes: 16 * 1024 };
  const log = await SegmentLog.open(join(dir, 'log'), opts);
  return {
    log,
    reopen: () => SegmentLog.open(join(dir, 'log'), opts),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
