// Child process of the kill -9 test (segment-log.crash.test.ts): opens the log in argv[2], appends
// batches from 16 concurrent writers, and prints each acknowledged batch as
// `ack <worker> <seq> <firstOffset> <count>` until it is killed.
import { recordOf } from '../../../log/contract-helpers.ts';
import { SegmentLog } from './segment-log.ts';

const dir = process.argv[2];
const run = process.argv[3] ?? '0';
if (dir === undefined) throw new Error('usage: crash-writer <dir> <run>');
const log = await SegmentLog.open(dir, { segmentBytes: 64 * 1024 });
process.stdout.write('ready\n');
await Promise.all(
  Array.from({ length: 16 }, async (_, w) => {
    for (let s = 0; ; s++) {
      const n = 1 + ((w * 7 + s) % 5);
      const recs = Array.from({ length: n }, (_, i) =>
        recordOf(`k${w % 4}`, `${run}-${w}-${s}-${i}`, 100 + ((s * 31 + i) % 400)),
      );
      const pos = await log.append(recs);
      // Pipes are written synchronously on Linux: a line printed here was really acknowledged.
      process.stdout.write(`ack ${w} ${s} ${pos[0]!.offset} ${n}\n`);
    }
  }),
);
