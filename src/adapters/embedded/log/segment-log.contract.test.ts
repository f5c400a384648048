// Runs the EventLog contract suite on SegmentLog, with small segments so that trim and roll happen:
// once with recent records served from memory (the default), once with every read from the files.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventLogContract } from '../../../log/contract.ts';
import { SegmentLog } from './segment-log.ts';

for (const [name, recentRecords] of [
  ['SegmentLog', undefined],
  ['SegmentLog, reads from the files only', 0],
] as const)
  eventLogContract(name, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cds-seglog-'));
    const opts = { segmentBytes: 16 * 1024, ...(recentRecords === undefined ? {} : { recentRecords }) };
    const log = await SegmentLog.open(join(dir, 'log'), opts);
    return {
      log,
      reopen: () => SegmentLog.open(join(dir, 'log'), opts),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  });
