/**
 * The write side of the decision index, run in the index-writer worker. Per group of batches: rows
 * and ids are appended to their files and fdatasync'd (and, every FLUSH_ROWS rows, the decisionId
 * memory table is written as a run, see id-index.ts), then one LMDB transaction records the new
 * dictionary values, touched zones, counts, file lengths, live runs and the checkpoint. On start
 * the files are truncated to the lengths the last commit recorded and unlisted runs are deleted
 * (rows after the commit are a projection the Indexer re-feeds from the log).
 */
import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readdirSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { FLUSH_ROWS, IdIndex, IdRun, mergeEntries, runPath, writeRun } from './id-index.ts';
import {
  DICT_FIELDS,
  FLOOR_PREFIX,
  INDEX_LAYOUT,
  OLD_DBS,
  NO_CODE,
  hasRevision,
  liveRefs,
  type EntryColumns,
  type StateDbs,
} from './layout.ts';
import {
  AT,
  ROW,
  SEGMENT_ROWS,
  SUMMARY_FIELDS,
  SUPERSEDED,
  ZONE_STRIDE,
  RowReader,
  ZoneMap,
  rowFiles,
  summaryAdd,
} from './rows.ts';

/** What a commit changed, for the main thread's caches. */
export interface CommitInfo {
  readonly rows: number;
  /** New dictionary values: [field, code, value] triples, flat. */
  readonly dict: (string | number)[];
  /** Zones from segment `firstZone` on: ZONE_STRIDE numbers each (rows.ts), flat. */
  readonly firstZone: number;
  readonly zones: number[];
  /** Row of the group's first written entry. */
  readonly firstRow: number;
  /** Indices (in the group) of entries skipped as already indexed, ascending. */
  readonly skipped: number[];
  /** Add ids of the group, in order (set by the worker). */
  group?: number[];
  /** The id runs (by sequence number) and the rows they cover. */
  readonly runs: number[];
  readonly flushedRows: number;
}

/** Runs merged at once (and per size tier). */
const MERGE_FAN_IN = 4;

/** Milliseconds a merged-away run file is kept, so that the main thread has switched to its successor. */
const DELETE_AFTER_MS = 30_000;

/** Writer state: dictionaries, row count, zones; reloaded from the committed state after a failure. */
export class IndexStore {
  private dict: Map<string, number>[] = [];
  private dictSize: number[] = [];
  private rows = 0;
  private idsBytes = 0;
  private zones = new ZoneMap();
  private readonly rowsFd: number;
  private readonly idsFd: number;
  private readonly reader: RowReader;
  private ids: IdIndex;
  private runSeq = 0;
  private doomed: { path: string; at: number }[] = [];

  constructor(
    private readonly dbs: StateDbs,
    private readonly dir: string,
    private readonly flushRows = FLUSH_ROWS,
  ) {
    const f = rowFiles(dir);
    // Not O_APPEND: flags are set in place in written rows. The files may not exist yet.
    for (const file of [f.rows, f.ids]) closeSync(openSync(file, 'a'));
    syncDir(dir);
    this.rowsFd = openSync(f.rows, 'r+');
    this.idsFd = openSync(f.ids, 'r+');
    this.reader = new RowReader(dir);
    this.ids = new IdIndex(dir, this.reader);
    this.load();
  }

  /** (Re)loads the committed state and truncates the files to it; drops an index of another layout. */
  load(): void {
    const { env, decisionStats, decisionDict, decisionZones } = this.dbs;
    if (decisionStats.get(['layout']) !== INDEX_LAYOUT) {
      for (const name of readdirSync(this.dir))
        if (/^decision-idrun-\d+\.bin$/.test(name)) unlinkSync(runPath(this.dir, Number(name.slice(15, -4))));
    }
    if (decisionStats.get(['layout']) !== INDEX_LAYOUT) {
      env.transactionSync(() => {
        for (const name of OLD_DBS) env.openDB({ name }).clearSync();
        for (const db of [decisionStats, decisionDict, decisionZones]) db.clearSync();
        decisionStats.putSync(['layout'], INDEX_LAYOUT);
      });
    }
    this.rows = decisionStats.get(['rows']) ?? 0;
    this.idsBytes = decisionStats.get(['idsBytes']) ?? 0;
    ftruncateSync(this.rowsFd, this.rows * ROW);
    ftruncateSync(this.idsFd, this.idsBytes);
    const runs = (decisionStats.get(['runs']) as unknown as number[] | undefined) ?? [];
    this.runSeq = decisionStats.get(['runSeq']) ?? 0;
    for (const name of readdirSync(this.dir)) {
      const m = /^decision-idrun-(\d+)\.bin$/.exec(name);
      if (m !== null && !runs.includes(Number(m[1]))) unlinkSync(runPath(this.dir, Number(m[1])));
    }
    this.ids.close();
    this.ids = new IdIndex(this.dir, this.reader);
    const flushedRows = decisionStats.get(['flushedRows']) ?? 0;
    this.ids.setRuns(runs, flushedRows);
    this.ids.loadRows(flushedRows, this.rows);
    this.dict = DICT_FIELDS.map(() => new Map<string, number>());
    this.dictSize = DICT_FIELDS.map(() => 0);
    for (const { key, value } of decisionDict.getRange()) {
      const [f, code] = key;
      (this.dict[f] as Map<string, number>).set(value, code);
      this.dictSize[f] = Math.max(this.dictSize[f] as number, code + 1);
    }
    this.zones = new ZoneMap();
    for (const { key, value } of decisionZones.getRange()) this.zones.set(key, value);
  }

  /** The floors of the index as last committed by the main thread (read only when a revision is met again). */
  private floors(): Map<number, number> {
    this.dbs.env.resetReadTxn();
    const out = new Map<number, number>();
    for (const { key, value } of this.dbs.meta.getRange({ start: FLOOR_PREFIX, end: `${FLOOR_PREFIX}~` }))
      out.set(Number(key.slice(FLOOR_PREFIX.length)), Number(value));
    return out;
  }

  /**
   * Writes a group of batches and the checkpoint durably; an entry whose decisionId and revision
   * are already indexed is skipped.
   */
  write(c: EntryColumns, through: Readonly<Record<number, number>>): CommitInfo {
    const { env, decisionDict, decisionZones, decisionStats } = this.dbs;
    const now = Date.now();
    this.doomed = this.doomed.filter((d) => {
      if (d.at > now) return true;
      try {
        unlinkSync(d.path);
      } catch {
        // already gone
      }
      return false;
    });
    const firstRow = this.rows;
    // Rows are filled through typed-array views (the platform is little-endian, checked in rows.ts).
    const ab = new ArrayBuffer(c.n * ROW);
    const buf = Buffer.from(ab);
    const f64 = new Float64Array(ab);
    const u32 = new Uint32Array(ab);
    const idBuf = Buffer.allocUnsafe(c.n * 256);
    let idLen = 0;
    const newDict: (string | number)[] = [];
    const flagWrites: number[] = [];
    const skipped: number[] = [];
    const dicts = this.dict;
    const nums = c.nums;
    const codes = c.codes;
    const news = c.news;
    let nextNew = 0;
    let added = 0;
    let newDecisions = 0;
    let floors: Map<number, number> | undefined;
    const floor = (p: number): number => (floors ??= this.floors()).get(p) ?? 0;
    try {
      for (let i = 0; i < c.n; i++) {
        const j = i * 5;
        const k = i * DICT_FIELDS.length;
        const id = c.ids[i] as string;
        const rev = nums[j + 3] as number;
        const partition = nums[j + 1] as number;
        const offset = nums[j + 2] as number;
        const row = firstRow + added;
        let refs = this.ids.lookup(id);
        // A revision retention made the index forget (below its partition's floor) is indexed
        // anew when published again: only refs still held deduplicate or are superseded.
        if (refs !== undefined && hasRevision(refs, rev)) refs = liveRefs(refs, floor);
        let flags = 0;
        if (refs === undefined) newDecisions++;
        else if (refs.length > 0) {
          if (hasRevision(refs, rev)) {
            // Skipped: its values sent as strings are still consumed, in order.
            for (let f = 0; f < DICT_FIELDS.length; f++) if (codes[k + f] === NO_CODE) nextNew++;
            skipped.push(i);
            continue;
          }
          const top = refs[refs.length - 4] as number;
          if (top > rev) flags = SUPERSEDED;
          else {
            const old = refs[refs.length - 1] as number;
            if (old >= firstRow) buf[(old - firstRow) * ROW + AT.flags] = SUPERSEDED;
            else flagWrites.push(old);
          }
        }
        this.ids.remember(id, rev, partition, offset, row);
        const at = added * ROW;
        added++;
        const n = idBuf.write(id, idLen, 'utf8');
        if (n > 255) throw new Error(`decisionId too long: ${id.slice(0, 40)}...`);
        const r8 = at >> 3;
        const r4 = at >> 2;
        f64[r8] = nums[j] as number;
        f64[r8 + 1] = offset;
        f64[r8 + 2] = this.idsBytes + idLen;
        u32[r4 + 6] = partition;
        u32[r4 + 7] = rev;
        for (let f = 0; f < DICT_FIELDS.length; f++) {
          let code = codes[k + f] as number;
          if (code === NO_CODE) {
            const value = news[nextNew++] as string;
            const d = dicts[f] as Map<string, number>;
            const known = d.get(value);
            if (known !== undefined) code = known;
            else {
              code = this.dictSize[f] as number;
              this.dictSize[f] = code + 1;
              d.set(value, code);
              newDict.push(f, code, value);
            }
          }
          u32[r4 + 8 + f] = code;
        }
        buf[at + AT.priority] = nums[j + 4] as number;
        buf[at + AT.flags] = flags;
        buf[at + AT.idLen] = n;
        idLen += n;
      }
      if (added > 0) {
        writeSync(this.rowsFd, buf, 0, added * ROW, firstRow * ROW);
        writeSync(this.idsFd, idBuf, 0, idLen, this.idsBytes);
      }
      const one = Buffer.of(0);
      for (const old of flagWrites) {
        one[0] = SUPERSEDED;
        writeSync(this.rowsFd, one, 0, 1, old * ROW + AT.flags);
      }
      if (added > 0 || flagWrites.length > 0) {
        fdatasyncSync(this.rowsFd);
        if (idLen > 0) fdatasyncSync(this.idsFd);
      }
      // Zones of the segments this group touched.
      const firstZone = Math.floor(firstRow / SEGMENT_ROWS);
      const zones: number[] = [];
      for (let r = firstRow; r < firstRow + added;) {
        const s = Math.floor(r / SEGMENT_ROWS);
        const end = Math.min(firstRow + added, (s + 1) * SEGMENT_ROWS);
        const zone = this.zones.get(s);
        for (; r < end; r++) {
          const r8 = ((r - firstRow) * ROW) >> 3;
          const t = f64[r8] as number;
          if (t < (zone[0] as number)) zone[0] = t;
          if (t > (zone[1] as number)) zone[1] = t;
          for (let f = 0; f < SUMMARY_FIELDS; f++) summaryAdd(zone, 2, f, u32[r8 * 2 + 8 + f] as number);
        }
        for (const x of zone) zones.push(x);
      }
      const idsBytes = this.idsBytes + idLen;
      const rows = firstRow + added;
      // Enough rows in memory: flush them as a run, then merge runs of one size tier four at a time.
      let runs = this.ids.runs.map((r) => ({ seq: r.seq, count: r.count }));
      const flushed = rows - this.ids.flushedRows >= this.flushRows;
      const merged: number[] = [];
      if (flushed) {
        const entries = this.ids.memEntries();
        writeRun(this.dir, this.runSeq, entries);
        runs.push({ seq: this.runSeq++, count: entries.length / 4 });
        for (;;) {
          const tail = runs.slice(-MERGE_FAN_IN);
          if (
            tail.length < MERGE_FAN_IN ||
            new Set(tail.map((r) => tierOf(r.count, this.flushRows))).size !== 1
          )
            break;
          const parts = tail.map((r) => {
            const run = IdRun.open(this.dir, r.seq);
            try {
              return run.readAll();
            } finally {
              run.close();
            }
          });
          const all = mergeEntries(parts);
          writeRun(this.dir, this.runSeq, all);
          merged.push(...tail.map((r) => r.seq));
          runs = [...runs.slice(0, -MERGE_FAN_IN), { seq: this.runSeq++, count: all.length / 4 }];
        }
      }
      if (flushed) syncDir(this.dir);
      const runSeqs = runs.map((r) => r.seq);
      const flushedRows = flushed ? rows : this.ids.flushedRows;
      env.transactionSync(() => {
        if (flushed) {
          decisionStats.putSync(['runs'], runSeqs as unknown as number);
          decisionStats.putSync(['runSeq'], this.runSeq);
          decisionStats.putSync(['flushedRows'], flushedRows);
        }
        for (let i = 0; i < newDict.length; i += 3)
          decisionDict.putSync([newDict[i] as number, newDict[i + 1] as number], newDict[i + 2] as string);
        for (let z = 0; z < zones.length; z += ZONE_STRIDE)
          decisionZones.putSync(firstZone + z / ZONE_STRIDE, zones.slice(z, z + ZONE_STRIDE));
        if (added > 0) {
          decisionStats.putSync(['rows'], rows);
          decisionStats.putSync(['idsBytes'], idsBytes);
          decisionStats.putSync(['n', 'revisions'], (decisionStats.get(['n', 'revisions']) ?? 0) + added);
        }
        if (newDecisions > 0)
          decisionStats.putSync(
            ['n', 'decisions'],
            (decisionStats.get(['n', 'decisions']) ?? 0) + newDecisions,
          );
        for (const [partition, next] of Object.entries(through))
          decisionStats.putSync(['cp', Number(partition)], next);
      });
      this.rows = rows;
      this.idsBytes = idsBytes;
      for (let z = 0; z < zones.length; z += ZONE_STRIDE)
        this.zones.set(firstZone + z / ZONE_STRIDE, zones, z);
      if (flushed) {
        this.ids.setRuns(runSeqs, flushedRows);
        for (const seq of merged)
          if (!runSeqs.includes(seq))
            this.doomed.push({ path: runPath(this.dir, seq), at: now + DELETE_AFTER_MS });
      }
      return { rows, firstRow, skipped, dict: newDict, firstZone, zones, runs: runSeqs, flushedRows };
    } catch (e) {
      this.load();
      throw e;
    }
  }

  close(): void {
    this.ids.close();
    this.reader.close();
    closeSync(this.rowsFd);
    closeSync(this.idsFd);
  }
}

/** Size tier of a run: runs of one tier are merged together. */
/** Makes the directory's entries (new files) durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function tierOf(count: number, flushRows: number): number {
  return Math.floor(Math.log(Math.max(1, count / flushRows)) / Math.log(MERGE_FAN_IN) + 1e-9);
}
