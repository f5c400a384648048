/**
 * The cluster-mode EventLog on Apache Pulsar (DESIGN 6, ADR 0014). One log is:
 *
 *   <topic>            a partitioned topic; each record is one decision message on the partition
 *                      topic `<topic>-partition-N` of its key (format.ts, docs/pulsar-format.md)
 *   <topic>.commits    a non-partitioned topic of log records (genesis, commit, trim, checkpointed)
 *                      that decides which decision messages are in the log and at which offsets
 *   <topic>.checkpoints  checkpoints: the state after one commit-topic record (checkpoint.ts), so
 *                      that opening reads the commit topic only after the last one
 *
 * An append sends its decision messages (pipelined, with Pulsar producer batching), and once every
 * one is acknowledged, one commit record listing their message ids. A record is in the log once its
 * commit is; offsets are numbered by every reader in commit-topic order, so all instances agree. A
 * batch whose messages or commit fail is not committed: none of it is ever read (a partly written
 * batch stays as orphan messages that cds ignores). The append resolves when this instance has read
 * its own commit back (that is when its offsets are known).
 */
import { randomUUID } from 'node:crypto';
import { CdsError, isCdsError } from '../../errors/index.ts';
import type { AppendRecord, Appended, EventLog, LogRecord, PartitionExtent } from '../../log/port.ts';
import { fromPair, idPair, readLastCheckpoint, readUntil, toChunks } from './checkpoint.ts';
import type { CheckpointState, StoredCheckpoint } from './checkpoint.ts';
import { PulsarError, topicName } from './client.ts';
import type { PulsarClient, PulsarProducer, PulsarReader, RetentionPolicy } from './client.ts';
import {
  checkRecord,
  decodeEntry,
  encodeEntry,
  FORMAT_VERSION,
  fromMessage,
  toMessage,
  toRuns,
} from './format.ts';
import type { DecodedRecord, LogEntry } from './format.ts';
import { partitionOfKey } from './hash.ts';
import { compareMessageIds } from './message-id.ts';
import type { MessageId } from './message-id.ts';
import { RecordCache } from './record-cache.ts';
import { RunIndex } from './run-index.ts';
import type { Located } from './run-index.ts';
import { WsPulsarClient } from './ws-client.ts';

/** Subscription that pins the log's topics (moved forward by trim only). */
export const TRIM_SUBSCRIPTION = 'cds-trim';

/** Options of {@link PulsarLog.open}. */
export interface PulsarLogOptions {
  /** The broker's web service URL (used when `client` is not given). */
  readonly url?: string;
  /** A client to use (not closed by the log); default: a WebSocket client on `url`. */
  readonly client?: PulsarClient;
  readonly tenant: string;
  readonly namespace: string;
  /** Name of the partitioned topic (default `decisions`). */
  readonly topic?: string;
  /** Partitions when the log is created (default 4); an existing log keeps its own. */
  readonly partitions?: number;
  /** Retention set on the namespace when this call creates it (default: 1 day, no size limit). */
  readonly retention?: RetentionPolicy;
  /** Largest payload of one record (default 4 MiB; the broker's message and frame limits must allow it). */
  readonly maxPayloadBytes?: number;
  /** Bytes of recent records kept in memory for reads (default 64 MiB). */
  readonly cacheBytes?: number;
  /** Most records in one commit (default 5,000). */
  readonly maxCommitRecords?: number;
  /** Groups in flight at once (default 2: one committing while the next sends its messages; appends arriving meanwhile coalesce into the next group). */
  readonly maxInFlight?: number;
  /**
   * Commit records applied between two checkpoints (default 1,000; 0: never write one). The writer of
   * the commit that completes an interval writes the checkpoint, so one instance of a cluster does.
   */
  readonly checkpointEvery?: number;
  /** Most runs in one checkpoint message (default 16,000: about 500 KB, under a 1 MiB WebSocket frame). */
  readonly checkpointChunkRuns?: number;
  /** Longest wait in close() for appends still in flight (default 30 s). */
  readonly closeTimeoutMs?: number;
  /** Background failures (trim cursor moves, reader trouble). */
  readonly onError?: (e: unknown) => void;
}

/** Default namespace retention: acknowledged data kept one day (subscriptions pin the rest). */
export const DEFAULT_RETENTION: RetentionPolicy = { retentionTimeInMinutes: 24 * 60, retentionSizeInMB: -1 };
/** A committed record whose message this instance has not seen is read from Pulsar after this long. */
const READY_WAIT_MS = 2_000;
/** How long an append waits for a producer that is reconnecting before it fails. */
const RECONNECT_GRACE_MS = 1_000;
/** A cold read gives up after this long. */
const COLD_READ_TIMEOUT_MS = 30_000;

interface QueuedAppend {
  readonly records: readonly AppendRecord[];
  readonly sizes: readonly number[];
  readonly partitions: readonly number[];
  readonly resolve: (v: Appended[]) => void;
  readonly reject: (e: unknown) => void;
}

/** A commit of this instance between its send and its reading back. */
interface OwnCommit {
  readonly appends: readonly QueuedAppend[];
  /** Per partition, the (append, record) of each listed message in listed order. */
  readonly layout: Map<number, [number, number][]>;
}

interface Waiter {
  readonly offset: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

class Partition {
  readonly runs: RunIndex;
  first = 0;
  /** Offset up to which records are readable here (committed, and their message seen or sought). */
  next = 0;
  /** Committed records not yet readable here: offsets next.., their ids and since when. */
  pending: { id: MessageId; since: number }[] = [];
  pendingHead = 0;
  /** Last message id the partition's tail reader saw. */
  seen: MessageId | undefined;
  waiters: Waiter[] = [];
  constructor(
    readonly index: number,
    readonly topic: string,
    readonly producer: PulsarProducer,
  ) {
    this.runs = new RunIndex(index);
  }
}

const unavailable = (what: string, cause?: unknown): CdsError =>
  new CdsError(
    'STORAGE_UNAVAILABLE',
    `Pulsar: ${what}${cause instanceof Error ? `: ${cause.message}` : ''}`,
    {
      ...(cause === undefined ? {} : { cause }),
      retryAfterSeconds: 1,
    },
  );

const shuttingDown = (): CdsError => new CdsError('SHUTTING_DOWN', 'the log is closed');

/** The EventLog on Pulsar. */
export class PulsarLog implements EventLog {
  readonly partitions: number;
  readonly #client: PulsarClient;
  readonly #ownsClient: boolean;
  readonly #opts: PulsarLogOptions;
  readonly #commitTopic: string;
  readonly #commitProducer: PulsarProducer;
  readonly #checkpointTopic: string;
  #checkpointProducer: PulsarProducer | undefined;
  /** Commit records applied since the last checkpoint point (the same count on every reader). */
  #sinceCheckpoint = 0;
  /** The last complete checkpoint known here (its first chunk, and the commit record it covers). */
  #lastCheckpoint: { start: MessageId; upTo: MessageId } | undefined;
  #checkpointRun: Promise<void> = Promise.resolve();
  /** What opening read: the checkpoint it started from, and the commit-topic records after it. */
  #opened: { checkpoint: MessageId | undefined; commitRecordsRead: number } = {
    checkpoint: undefined,
    commitRecordsRead: 0,
  };
  readonly #parts: Partition[];
  readonly #cache: RecordCache;
  readonly #writer = randomUUID().slice(0, 13);
  readonly #maxPayload: number;
  #epoch: string | undefined;
  #seq = 0;
  /** Highest commit sequence applied per writer (a retried commit's second copy is skipped). */
  readonly #applied = new Map<string, number>();
  readonly #own = new Map<string, OwnCommit>();
  #queue: QueuedAppend[] = [];
  #inFlight = 0;
  #commitChain: Promise<void> = Promise.resolve();
  #closing = false;
  /** close() has finished. */
  #done = false;
  #closed: Promise<void> | undefined;
  #catchingUp = true;
  #commitReader: PulsarReader | undefined;
  readonly #readers: PulsarReader[] = [];
  #commitPos: MessageId | undefined;
  #posWaiters: { id: MessageId; resolve: () => void }[] = [];
  #genesisWaiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  readonly #loops: Promise<void>[] = [];
  readonly #idle: (() => void)[] = [];

  private constructor(opts: PulsarLogOptions, client: PulsarClient, ownsClient: boolean, partitions: number) {
    this.#opts = opts;
    this.#client = client;
    this.#ownsClient = ownsClient;
    this.partitions = partitions;
    const topic = opts.topic ?? 'decisions';
    this.#commitTopic = topicName(opts.tenant, opts.namespace, `${topic}.commits`);
    this.#commitProducer = client.producer(this.#commitTopic, { batching: false });
    this.#checkpointTopic = topicName(opts.tenant, opts.namespace, `${topic}.checkpoints`);
    this.#parts = Array.from({ length: partitions }, (_, p) => {
      const t = topicName(opts.tenant, opts.namespace, topic, p);
      return new Partition(p, t, client.producer(t, { batching: true }));
    });
    this.#cache = new RecordCache(opts.cacheBytes ?? 64 * 1024 * 1024);
    this.#maxPayload = opts.maxPayloadBytes ?? 4 * 1024 * 1024;
  }

  /**
   * Opens (creating when missing) the log: tenant, namespace (with its retention when created here),
   * the partitioned topic, the commit topic and their pinning subscription; then reads the commit
   * topic to its end. Rejects with STORAGE_UNAVAILABLE when Pulsar cannot be reached.
   */
  static async open(opts: PulsarLogOptions): Promise<PulsarLog> {
    const ownsClient = opts.client === undefined;
    if (opts.client === undefined && opts.url === undefined)
      throw new CdsError('CONFIG_INVALID', 'PulsarLog needs a url or a client');
    const client = opts.client ?? new WsPulsarClient(opts.url as string);
    try {
      const partitions = await PulsarLog.#provision(client, opts);
      const log = new PulsarLog(opts, client, ownsClient, partitions);
      try {
        await log.#start();
      } catch (e) {
        await log.close().catch(() => {});
        throw e;
      }
      return log;
    } catch (e) {
      if (ownsClient) await client.close().catch(() => {});
      if (isCdsError(e)) throw e;
      throw unavailable('cannot open the log', e);
    }
  }

  static async #provision(client: PulsarClient, opts: PulsarLogOptions): Promise<number> {
    const admin = client.admin;
    const ns = `${opts.tenant}/${opts.namespace}`;
    const topic = topicName(opts.tenant, opts.namespace, opts.topic ?? 'decisions');
    await admin.ensureTenant(opts.tenant);
    if (await admin.ensureNamespace(ns)) await admin.setRetention(ns, opts.retention ?? DEFAULT_RETENTION);
    await admin.createPartitionedTopic(topic, opts.partitions ?? 4);
    const partitions = await admin.partitions(topic);
    if (partitions < 1)
      throw new CdsError('CONFIG_INVALID', `Pulsar topic ${topic} exists and is not partitioned`);
    const commits = `${topic}.commits`;
    const checkpoints = `${topic}.checkpoints`;
    await admin.createTopic(commits);
    await admin.createTopic(checkpoints);
    // Before anything is written: without a subscription, retention alone would decide what stays.
    await admin.createSubscription(topic, TRIM_SUBSCRIPTION, 'earliest');
    await admin.createSubscription(commits, TRIM_SUBSCRIPTION, 'earliest');
    await admin.createSubscription(checkpoints, TRIM_SUBSCRIPTION, 'earliest');
    return partitions;
  }

  async #start(): Promise<void> {
    const last = await this.#client.admin.lastMessageId(this.#commitTopic);
    const checkpoint = last === undefined ? undefined : await this.#loadCheckpoint(last);
    this.#commitReader = this.#client.reader(
      this.#commitTopic,
      checkpoint === undefined ? 'earliest' : { after: checkpoint.state.upTo },
    );
    this.#loops.push(this.#commitLoop(this.#commitReader));
    if (last !== undefined) await this.#reachedCommit(last);
    if (this.#epoch === undefined) {
      await this.#commitProducer.whenConnected(AbortSignal.timeout(30_000));
      await this.#commitProducer.send({
        payload: encodeEntry({
          type: 'genesis',
          v: FORMAT_VERSION,
          epoch: randomUUID(),
          partitions: this.partitions,
          at: Date.now(),
        }),
        properties: { 'cds.type': 'genesis' },
      });
      await new Promise<void>((r) => (this.#epoch !== undefined ? r() : this.#genesisWaiters.push(r)));
    }
    this.#catchingUp = false;
    for (const part of this.#parts) {
      part.next = part.runs.end;
      // Warm the cache from a little before the tail; older records are read from Pulsar on demand.
      const from = Math.max(part.first, part.runs.end - 1000);
      const lowest = part.runs.lowestIdFrom(from);
      const reader = this.#client.reader(part.topic, lowest === undefined ? 'earliest' : { at: lowest });
      this.#readers.push(reader);
      this.#loops.push(this.#dataLoop(part, reader));
    }
    await Promise.all(
      [this.#commitProducer, ...this.#parts.map((p) => p.producer)].map((p) =>
        p.whenConnected(AbortSignal.timeout(30_000)),
      ),
    );
    this.#timer = setInterval(() => {
      for (const p of this.#parts) this.#advance(p);
    }, 250);
    this.#timer.unref();
  }

  /**
   * Restores the last checkpoint, if there is one, after checking that the commit topic still holds
   * the record it covers (else the records after it may be gone: the log cannot be opened).
   */
  async #loadCheckpoint(last: MessageId): Promise<StoredCheckpoint | undefined> {
    let cp: StoredCheckpoint | undefined;
    try {
      cp = await readLastCheckpoint(this.#client, this.#checkpointTopic);
    } catch (e) {
      throw unavailable('cannot read the last checkpoint', e);
    }
    if (cp === undefined) {
      await this.#checkStartsWithGenesis(last);
      return undefined;
    }
    const { state } = cp;
    let held = false;
    try {
      await readUntil(this.#client, this.#commitTopic, { at: state.upTo }, last, (id) => {
        held = compareMessageIds(id, state.upTo) === 0;
        return true;
      });
    } catch (e) {
      throw unavailable('cannot read the commit topic at the last checkpoint', e);
    }
    if (!held)
      throw new CdsError(
        'DATA_CORRUPT',
        `Pulsar: ${this.#commitTopic} no longer holds ${state.upTo.ledgerId}:${state.upTo.entryId}, the record the last checkpoint covers; the log cannot be read from it`,
      );
    if (state.partitions !== this.partitions)
      this.#opts.onError?.(
        new Error(`checkpoint says ${state.partitions} partitions, the topic has ${this.partitions}`),
      );
    this.#epoch = state.epoch;
    for (const [w, seq] of state.applied) this.#applied.set(w, seq);
    for (const part of state.parts) {
      const p = this.#parts[part.p];
      if (p === undefined) continue;
      p.runs.restart(part.base);
      for (const run of part.runs) p.runs.add(run);
      p.first = part.first;
      p.next = p.runs.end;
    }
    this.#commitPos = state.upTo;
    this.#lastCheckpoint = { start: cp.start, upTo: state.upTo };
    this.#opened.checkpoint = state.upTo;
    return cp;
  }

  /**
   * Without a checkpoint the commit topic is read from its earliest record, which must then be the
   * genesis: a topic that starts with anything else was trimmed, and reading it would miss commits.
   */
  async #checkStartsWithGenesis(last: MessageId): Promise<void> {
    let type: string | undefined;
    try {
      await readUntil(this.#client, this.#commitTopic, 'earliest', last, (_, payload) => {
        type = decodeEntry(payload)?.type;
        return true;
      });
    } catch (e) {
      throw unavailable('cannot read the commit topic', e);
    }
    if (type !== 'genesis')
      throw new CdsError(
        'DATA_CORRUPT',
        `Pulsar: ${this.#commitTopic} does not start with its genesis and no checkpoint covers what is missing; the log cannot be read`,
      );
  }

  /** The state after the commit record `upTo` (taken right after applying it). */
  #snapshot(upTo: MessageId): CheckpointState {
    return {
      epoch: this.#epoch ?? '',
      partitions: this.partitions,
      upTo,
      applied: [...this.#applied],
      parts: this.#parts.map((p) => ({ p: p.index, first: p.first, ...p.runs.held() })),
    };
  }

  /**
   * Writes a checkpoint, then the `checkpointed` record saying it is complete, then lets Pulsar drop
   * what only the previous complete checkpoint needed: the commit topic's and the checkpoint topic's
   * `cds-trim` move to that one (one checkpoint of slack, for a reader opening from it meanwhile). A
   * crash anywhere in between leaves more, never less: no record, no move.
   */
  async #writeCheckpoint(state: CheckpointState): Promise<void> {
    const prev = this.#lastCheckpoint;
    const chunks = toChunks(state, randomUUID(), prev?.start, this.#opts.checkpointChunkRuns ?? 16_000);
    this.#checkpointProducer ??= this.#client.producer(this.#checkpointTopic, { batching: false });
    const producer = this.#checkpointProducer;
    await producer.whenConnected(AbortSignal.timeout(10_000));
    let start: MessageId | undefined;
    for (const c of chunks) {
      const chunk = start === undefined ? c : { ...c, start: idPair(start) };
      const id = await producer.send({
        payload: Buffer.from(JSON.stringify(chunk), 'utf8'),
        properties: { 'cds.type': 'checkpoint' },
      });
      start ??= id;
    }
    await this.#commitProducer.send({
      payload: encodeEntry({
        type: 'checkpointed',
        v: FORMAT_VERSION,
        start: idPair(start as MessageId),
        upTo: idPair(state.upTo),
      }),
      properties: { 'cds.type': 'checkpointed' },
    });
    if (prev === undefined) return;
    await this.#client.admin.resetCursor(this.#commitTopic, TRIM_SUBSCRIPTION, prev.upTo);
    await this.#client.admin.resetCursor(this.#checkpointTopic, TRIM_SUBSCRIPTION, prev.start);
  }

  /** Resolves once the checkpoints this instance started writing are written (or failed). */
  whenCheckpointed(): Promise<void> {
    return this.#checkpointRun;
  }

  /** What opening read: the commit record of the checkpoint it started from, and the records after. */
  get opened(): { readonly checkpoint: MessageId | undefined; readonly commitRecordsRead: number } {
    return this.#opened;
  }

  /** Resolves once the commit reader has read `id` (or beyond). */
  #reachedCommit(id: MessageId): Promise<void> {
    if (this.#commitPos !== undefined && compareMessageIds(this.#commitPos, id) >= 0)
      return Promise.resolve();
    return new Promise((resolve) => this.#posWaiters.push({ id, resolve }));
  }

  get epoch(): string {
    return this.#epoch ?? '';
  }

  partitionOf(key: string): number {
    return partitionOfKey(key, this.partitions);
  }

  /** The Pulsar message id of the record at `offset`, while the log holds it (for retention pins). */
  messageIdAt(partition: number, offset: number): MessageId | undefined {
    return this.#parts[partition]?.runs.idAt(offset);
  }

  /**
   * Pins Pulsar retention for a reader of the log (DESIGN 6: a durable subscription acknowledged up
   * to the slowest cds cursor): creates the durable `subscription` on every partition topic when
   * missing and moves it to the lowest message id of the records at or after `offsets[p]`, so that
   * Pulsar keeps them. A partition with no record there is left where it is (it keeps more, never
   * less). Call it again as the cursors move.
   */
  async pinRetention(subscription: string, offsets: readonly number[]): Promise<void> {
    for (const part of this.#parts) {
      const offset = offsets[part.index];
      if (offset === undefined) continue;
      const at = part.runs.lowestIdFrom(Math.max(offset, part.first));
      try {
        await this.#client.admin.createSubscription(part.topic, subscription, at ?? 'earliest');
        if (at !== undefined) await this.#client.admin.resetCursor(part.topic, subscription, at);
      } catch (e) {
        throw unavailable(`cannot pin retention for ${subscription} on ${part.topic}`, e);
      }
    }
  }

  /** The partition topic of a partition, and the commit topic (full names). */
  get topics(): { partitions: string[]; commits: string; checkpoints: string } {
    return {
      partitions: this.#parts.map((p) => p.topic),
      commits: this.#commitTopic,
      checkpoints: this.#checkpointTopic,
    };
  }

  // ---- reading the commit topic ------------------------------------------------------------------

  async #commitLoop(reader: PulsarReader): Promise<void> {
    for await (const ev of reader) {
      if (ev.type === 'disconnected') {
        this.#opts.onError?.(ev.error);
        continue;
      }
      if (ev.type !== 'messages') continue;
      for (const m of ev.messages) {
        const entry = decodeEntry(m.payload);
        if (this.#catchingUp) this.#opened.commitRecordsRead++;
        const applied = entry !== undefined && this.#apply(entry);
        this.#commitPos = m.id;
        if (applied && entry.type === 'commit') this.#checkpointPoint(entry.batch, m.id);
      }
      const pos = this.#commitPos;
      if (pos !== undefined && this.#posWaiters.length > 0) {
        const due = this.#posWaiters.filter((w) => compareMessageIds(pos, w.id) >= 0);
        this.#posWaiters = this.#posWaiters.filter((w) => compareMessageIds(pos, w.id) < 0);
        for (const w of due) w.resolve();
      }
    }
  }

  /**
   * Every `checkpointEvery` applied commits is a checkpoint point, the same on every reader; the
   * instance whose commit it is writes the checkpoint (of the state right now, after that commit).
   */
  #checkpointPoint(batch: string, at: MessageId): void {
    const every = this.#opts.checkpointEvery ?? 1_000;
    if (every <= 0 || ++this.#sinceCheckpoint < every) return;
    this.#sinceCheckpoint = 0;
    if (this.#catchingUp || this.#closing || batch.slice(0, batch.lastIndexOf(':')) !== this.#writer) return;
    const state = this.#snapshot(at);
    this.#checkpointRun = this.#checkpointRun
      .then(() => this.#writeCheckpoint(state))
      .catch((e: unknown) => this.#opts.onError?.(unavailable('checkpoint not written', e)));
  }

  /** Applies one commit-topic record; true when it was a commit applied now (not a repeat). */
  #apply(entry: LogEntry): boolean {
    if (entry.type === 'genesis') {
      if (this.#epoch !== undefined) return false; // a later genesis (a start-up race) changes nothing
      if (entry.partitions !== this.partitions)
        this.#opts.onError?.(
          new Error(`commit topic says ${entry.partitions} partitions, the topic has ${this.partitions}`),
        );
      this.#epoch = entry.epoch;
      for (const w of this.#genesisWaiters.splice(0)) w();
      return false;
    }
    if (this.#epoch === undefined) return false;
    if (entry.type === 'checkpointed') {
      const upTo = fromPair(entry.upTo);
      if (this.#lastCheckpoint === undefined || compareMessageIds(upTo, this.#lastCheckpoint.upTo) > 0)
        this.#lastCheckpoint = { start: fromPair(entry.start), upTo };
      return false;
    }
    if (entry.type === 'trim') {
      const part = this.#parts[entry.p];
      if (part === undefined) return false;
      const first = Math.min(entry.first, part.runs.end);
      if (first > part.first) {
        part.first = first;
        part.runs.dropBefore(first);
        if (part.next < first) {
          // Trimmed records need not become readable here: skip them (first <= next holds).
          part.pendingHead += first - part.next;
          part.next = first;
          this.#advance(part, true);
        }
      }
      return false;
    }
    const sep = entry.batch.lastIndexOf(':');
    const writer = entry.batch.slice(0, sep);
    const seq = Number(entry.batch.slice(sep + 1));
    if ((this.#applied.get(writer) ?? 0) >= seq) return false;
    this.#applied.set(writer, seq);
    const own = this.#own.get(entry.batch);
    this.#own.delete(entry.batch);
    const results = own?.appends.map((a) => new Array<Appended>(a.records.length));
    const now = Date.now();
    const touched: Partition[] = [];
    for (const part of entry.parts) {
      const p = this.#parts[part.p];
      if (p === undefined) continue;
      const base = p.runs.end;
      let k = 0;
      for (const run of part.runs) {
        p.runs.add(run);
        for (let i = 0; i < run[3]; i++) {
          const offset = base + k++;
          if (!this.#catchingUp) p.pending.push({ id: p.runs.idAt(offset) as MessageId, since: now });
        }
      }
      if (this.#catchingUp) p.next = p.runs.end;
      touched.push(p);
      if (results !== undefined)
        (own?.layout.get(part.p) ?? []).forEach(([a, r], i) => {
          (results[a] as Appended[])[r] = { partition: part.p, offset: base + i };
        });
    }
    for (const p of touched) this.#advance(p);
    if (own !== undefined && results !== undefined) {
      const needs = new Map<number, number>();
      for (const res of results)
        for (const r of res) needs.set(r.partition, Math.max(needs.get(r.partition) ?? 0, r.offset + 1));
      void Promise.all([...needs].map(([p, upto]) => this.waitFor(p, upto - 1)))
        .then(() => own.appends.forEach((a, i) => a.resolve(results[i] as Appended[])))
        .catch((e: unknown) => own.appends.forEach((a) => a.reject(e)))
        .finally(() => this.#groupDone());
    }
    return true;
  }

  /** Makes committed records readable once their message is here or can be fetched. */
  #advance(p: Partition, moved = false): void {
    const now = Date.now();
    const before = p.next;
    while (p.pendingHead < p.pending.length) {
      const head = p.pending[p.pendingHead] as { id: MessageId; since: number };
      const ready =
        this.#cache.has(p.index, head.id) ||
        (p.seen !== undefined && compareMessageIds(p.seen, head.id) >= 0) ||
        now - head.since > READY_WAIT_MS;
      if (!ready) break;
      p.pendingHead++;
      p.next++;
    }
    if (p.pendingHead > 1024 && p.pendingHead * 2 > p.pending.length) {
      p.pending = p.pending.slice(p.pendingHead);
      p.pendingHead = 0;
    }
    if ((p.next === before && !moved) || p.waiters.length === 0) return;
    const due = p.waiters.filter((w) => w.offset < p.next);
    p.waiters = p.waiters.filter((w) => w.offset >= p.next);
    for (const w of due) w.resolve();
  }

  async #dataLoop(p: Partition, reader: PulsarReader): Promise<void> {
    for await (const ev of reader) {
      if (ev.type !== 'messages') continue;
      for (const m of ev.messages) {
        this.#cache.set(p.index, m.id, fromMessage(m), m.payload.byteLength + 256);
        p.seen = m.id;
      }
      this.#advance(p);
    }
  }

  // ---- appending ---------------------------------------------------------------------------------

  append(records: readonly AppendRecord[]): Promise<Appended[]> {
    if (this.#closing) return Promise.reject(shuttingDown());
    let sizes: number[];
    try {
      sizes = records.map((r, i) => checkRecord(r, i, this.#maxPayload));
    } catch (e) {
      return Promise.reject(e);
    }
    if (records.length === 0) return Promise.resolve([]);
    const partitions = records.map((r) => this.partitionOf(r.key));
    const producers = [
      this.#commitProducer,
      ...new Set(partitions.map((p) => (this.#parts[p] as Partition).producer)),
    ];
    const enqueue = (): Promise<Appended[]> =>
      new Promise((resolve, reject) => {
        this.#queue.push({ records, sizes, partitions, resolve, reject });
        this.#pump();
      });
    if (producers.every((p) => p.connected)) return enqueue();
    // A producer reconnecting (after an idle close or a broker restart) gets a moment; a broker that
    // is away makes the append fail fast with a retriable error, nothing sent.
    return Promise.all(producers.map((p) => p.whenConnected(AbortSignal.timeout(RECONNECT_GRACE_MS)))).then(
      () => (this.#closing ? Promise.reject(shuttingDown()) : enqueue()),
      (e: unknown) => Promise.reject(unavailable('not connected to the broker', e)),
    );
  }

  #pump(): void {
    const max = this.#opts.maxCommitRecords ?? 5_000;
    while (this.#queue.length > 0 && this.#inFlight < (this.#opts.maxInFlight ?? 2)) {
      const group: QueuedAppend[] = [];
      let n = 0;
      while (
        this.#queue.length > 0 &&
        (group.length === 0 || n + (this.#queue[0] as QueuedAppend).records.length <= max)
      ) {
        const a = this.#queue.shift() as QueuedAppend;
        group.push(a);
        n += a.records.length;
      }
      this.#inFlight++;
      this.#send(group);
    }
  }

  /** Sends one group's messages now, and chains its commit after the previous group's. */
  #send(group: QueuedAppend[]): void {
    const batch = `${this.#writer}:${++this.#seq}`;
    const sent = group.map((a) =>
      Promise.all(
        a.records.map(async (r, i) => {
          const p = this.#parts[a.partitions[i] as number] as Partition;
          const id = await p.producer.send(toMessage(r, batch));
          this.#cache.set(p.index, id, r as DecodedRecord, (a.sizes[i] as number) + 256);
          return id;
        }),
      ),
    );
    // Failures are read by #commit once the previous group's commit is done; until then they are
    // handled here, so that a failure during an outage is not an unhandled rejection.
    for (const p of sent) p.catch(() => {});
    this.#commitChain = this.#commitChain
      .then(() => this.#commit(batch, group, sent))
      .catch((e: unknown) => this.#opts.onError?.(e));
  }

  async #commit(batch: string, group: QueuedAppend[], sent: Promise<MessageId[]>[]): Promise<void> {
    const outcomes = await Promise.allSettled(sent);
    const appends: QueuedAppend[] = [];
    const ids: MessageId[][] = [];
    outcomes.forEach((o, i) => {
      const a = group[i] as QueuedAppend;
      if (o.status === 'fulfilled') {
        appends.push(a);
        ids.push(o.value);
      } else
        a.reject(unavailable('a message of the batch was not stored; nothing of it was committed', o.reason));
    });
    if (appends.length === 0) return this.#groupDone();
    const layout = new Map<number, [number, number][]>();
    const listed = new Map<number, { id: MessageId; bytes: number }[]>();
    appends.forEach((a, ai) =>
      a.records.forEach((_, ri) => {
        const p = a.partitions[ri] as number;
        if (!layout.has(p)) {
          layout.set(p, []);
          listed.set(p, []);
        }
        layout.get(p)?.push([ai, ri]);
        listed.get(p)?.push({ id: (ids[ai] as MessageId[])[ri] as MessageId, bytes: a.sizes[ri] as number });
      }),
    );
    const parts = [...listed].sort((x, y) => x[0] - y[0]).map(([p, l]) => ({ p, runs: toRuns(l) }));
    this.#own.set(batch, { appends, layout });
    const payload = encodeEntry({ type: 'commit', v: FORMAT_VERSION, batch, parts });
    // The commit is the point of no return: it is sent until the broker acknowledges it. A copy
    // stored twice (ack lost, sent again) is skipped by readers (same writer and sequence).
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#commitProducer.whenConnected();
        await this.#commitProducer.send({
          payload,
          properties: { 'cds.type': 'commit', 'cds.batch': batch },
        });
        return;
      } catch (e) {
        if (e instanceof PulsarError && !e.retriable) {
          if (this.#own.delete(batch)) {
            for (const a of appends) a.reject(unavailable('the commit was refused', e));
            this.#groupDone();
          }
          return;
        }
        this.#opts.onError?.(e);
        if (this.#done) return;
        await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** Math.min(attempt, 6))));
      }
    }
  }

  #groupDone(): void {
    this.#inFlight--;
    this.#pump();
    if (this.#inFlight === 0 && this.#queue.length === 0) for (const w of this.#idle.splice(0)) w();
  }

  // ---- reading -----------------------------------------------------------------------------------

  async read(partition: number, fromOffset: number, maxRecords: number): Promise<LogRecord[]> {
    const p = this.#parts[partition];
    if (p === undefined || maxRecords <= 0) return [];
    const from = Math.max(fromOffset, p.first);
    const to = Math.min(p.next, from + maxRecords);
    if (to <= from) return [];
    const located = p.runs.locate(from, to);
    const missing = located.filter((l) => !this.#cache.has(partition, l.id));
    const fetched = missing.length > 0 ? await this.#coldRead(p, missing) : new Map<string, DecodedRecord>();
    return located.map((l) => {
      const rec = this.#cache.get(partition, l.id) ?? fetched.get(RecordCache.key(partition, l.id));
      if (rec === undefined) throw unavailable(`record ${partition}:${l.offset} could not be read`);
      return {
        key: rec.key,
        timestamp: rec.timestamp,
        headers: rec.headers,
        payload: rec.payload,
        partition,
        offset: l.offset,
      };
    });
  }

  /** Reads the given records from their partition topic with a reader started at the lowest id. */
  async #coldRead(p: Partition, wanted: Located[]): Promise<Map<string, DecodedRecord>> {
    const need = new Set(wanted.map((l) => RecordCache.key(p.index, l.id)));
    let lowest = (wanted[0] as Located).id;
    let highest = lowest;
    for (const l of wanted) {
      if (compareMessageIds(l.id, lowest) < 0) lowest = l.id;
      if (compareMessageIds(l.id, highest) > 0) highest = l.id;
    }
    const out = new Map<string, DecodedRecord>();
    const reader = this.#client.reader(p.topic, { at: lowest });
    const timer = setTimeout(() => void reader.close(), COLD_READ_TIMEOUT_MS);
    try {
      outer: for await (const ev of reader) {
        if (ev.type !== 'messages') continue;
        for (const m of ev.messages) {
          const k = RecordCache.key(p.index, m.id);
          if (need.has(k)) {
            const rec = fromMessage(m);
            out.set(k, rec);
            this.#cache.set(p.index, m.id, rec, m.payload.byteLength + 256);
          }
          if (out.size === need.size || compareMessageIds(m.id, highest) >= 0) break outer;
        }
      }
    } finally {
      clearTimeout(timer);
      await reader.close();
    }
    if (out.size < need.size)
      throw unavailable(`${need.size - out.size} record(s) of partition ${p.index} could not be read`);
    return out;
  }

  async readOne(partition: number, offset: number): Promise<LogRecord | undefined> {
    const p = this.#parts[partition];
    if (p === undefined || offset < p.first || offset >= p.next) return undefined;
    const [r] = await this.read(partition, offset, 1);
    return r?.offset === offset ? r : undefined;
  }

  waitFor(partition: number, offset: number, signal?: AbortSignal): Promise<void> {
    const p = this.#parts[partition];
    if (p === undefined) return Promise.reject(new CdsError('INVALID_POSITION', `no partition ${partition}`));
    if (offset < p.next) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#done) return Promise.reject(shuttingDown());
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        p.waiters = p.waiters.filter((w) => w !== waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        offset,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      p.waiters.push(waiter);
    });
  }

  // ---- trimming, extents, close ------------------------------------------------------------------

  async trim(partition: number, beforeOffset: number): Promise<number> {
    const p = this.#parts[partition];
    if (p === undefined) throw new CdsError('INVALID_POSITION', `no partition ${partition}`);
    if (this.#closing) throw shuttingDown();
    const first = Math.min(beforeOffset, p.next);
    if (first <= p.first) return p.first;
    let at: MessageId;
    try {
      await this.#commitProducer.whenConnected(AbortSignal.timeout(10_000));
      at = await this.#commitProducer.send({
        payload: encodeEntry({ type: 'trim', v: FORMAT_VERSION, p: partition, first }),
        properties: { 'cds.type': 'trim' },
      });
    } catch (e) {
      throw unavailable('trim not recorded', e);
    }
    await this.#reachedCommit(at);
    // Let Pulsar delete whole ledgers before the lowest message still in the log (best effort).
    const lowest = p.runs.lowestIdFrom(p.first);
    if (lowest !== undefined)
      await this.#client.admin
        .resetCursor(p.topic, TRIM_SUBSCRIPTION, lowest)
        .catch((e: unknown) => this.#opts.onError?.(e));
    return p.first;
  }

  trimPoint(partition: number, beforeOffset: number): number {
    const p = this.#parts[partition];
    if (p === undefined) throw new CdsError('INVALID_POSITION', `no partition ${partition}`);
    // The trim is logical (a trim record in the commit topic), so it lands exactly where asked.
    return Math.max(p.first, Math.min(beforeOffset, p.next));
  }

  extents(): PartitionExtent[] {
    return this.#parts.map((p) => ({ partition: p.index, first: p.first, next: p.next }));
  }

  storedBytes(): number {
    let n = 0;
    for (const p of this.#parts) n += p.runs.bytes;
    return n;
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      if (this.#inFlight > 0 || this.#queue.length > 0) {
        const deadline = new Promise<void>((r) => setTimeout(r, this.#opts.closeTimeoutMs ?? 30_000).unref());
        await Promise.race([new Promise<void>((r) => this.#idle.push(r)), deadline]);
      }
      const left = unavailable(
        'the log closed before the broker confirmed this batch; it may or may not be stored',
      );
      for (const a of this.#queue.splice(0)) a.reject(left);
      for (const own of this.#own.values()) for (const a of own.appends) a.reject(left);
      this.#own.clear();
      clearInterval(this.#timer);
      for (const p of this.#parts) for (const w of p.waiters.splice(0)) w.reject(shuttingDown());
      await this.#checkpointRun;
      await Promise.all([
        this.#checkpointProducer?.close(),
        this.#commitReader?.close(),
        ...this.#readers.map((r) => r.close()),
        this.#commitProducer.close(),
        ...this.#parts.map((p) => p.producer.close()),
      ]);
      await Promise.allSettled(this.#loops);
      if (this.#ownsClient) await this.#client.close();
      this.#done = true;
    })();
    return this.#closed;
  }
}
