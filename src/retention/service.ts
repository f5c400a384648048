/**
 * The retention service (DESIGN 5; ADR 0017): retention policies managed over the API (stored,
 * audited) and applied on a timer. Each run, per log partition: tally the records appended since the
 * last run, compute the offset before which every record may go by its policies, cap it by the durable
 * subscriptions that have not acknowledged what lies before it (a `wait` policy stops there; a `drop`
 * policy goes on, and the subscription and the ledger are told), then trim the log (whole segments)
 * and make the decision index forget what the log no longer holds.
 */
import { CdsError, validationError } from '../errors/index.ts';
import type { AuditTrail, AuthContext } from '../security/index.ts';
import type { RetentionPolicyRecord, RetentionPolicyStore } from '../state/retention-port.ts';
import { RetentionApplier, type ApplyDeps, type PartitionRun } from './apply.ts';
import { Periodic } from './periodic.ts';
import { nameErrors, parsePolicy, PolicySet, type CompiledPolicy } from './policy.ts';

/** Default records per tally chunk. */
const CHUNK = 1024;

/** What the service needs. */
export interface RetentionDeps extends ApplyDeps {
  readonly store: RetentionPolicyStore;
  readonly audit: AuditTrail;
  readonly onError: (e: unknown) => void;
  /** Milliseconds between runs (`retention.intervalMs`). */
  readonly intervalMs: number;
  /** Records per tally chunk (tests make it small). */
  readonly chunkSize?: number;
}

/** What one run did. */
export interface RunReport {
  /** ISO 8601. */
  readonly at: string;
  readonly durationMs: number;
  readonly partitions: readonly PartitionRun[];
}

/** A caller as the service sees it. */
type Caller = Pick<AuthContext, 'principalId'>;

/** Retention policies and their application. */
export class RetentionService {
  #set: PolicySet = new PolicySet([], 0);
  #generation = 0;
  readonly #periodic: Periodic<RunReport>;
  #last: RunReport | undefined;
  #stopped = false;
  readonly #applier: RetentionApplier;

  private constructor(private readonly deps: RetentionDeps) {
    this.#applier = new RetentionApplier(deps, deps.chunkSize ?? CHUNK, () => this.#stopped);
    this.#periodic = new Periodic((now) => this.#run(now), deps.onError);
  }

  /** Loads the stored policies. */
  static async open(deps: RetentionDeps): Promise<RetentionService> {
    const svc = new RetentionService(deps);
    await svc.reload();
    return svc;
  }

  /** Re-reads the policies from the store (at start, after a change, or one another instance made). */
  async reload(): Promise<void> {
    const records = await this.deps.store.list();
    const policies: CompiledPolicy[] = records.map((r) => ({
      name: r.name,
      pattern: r.pattern,
      onUnacknowledged: r.onUnacknowledged,
      ...(r.maxAgeMs === undefined ? {} : { maxAgeMs: r.maxAgeMs }),
      ...(r.maxBytes === undefined ? {} : { maxBytes: r.maxBytes }),
      ...(r.maxCount === undefined ? {} : { maxCount: r.maxCount }),
    }));
    // Tallies count records per governing policy, by index in the sorted set: a change of names or
    // patterns rebuilds them (from the first offset, next run); a change of limits does not.
    const shape = (set: PolicySet) => JSON.stringify(set.policies.map((x) => [x.name, x.pattern]));
    if (shape(new PolicySet(policies, 0)) !== shape(this.#set)) this.#generation++;
    this.#set = new PolicySet(policies, this.#generation);
  }

  /** Starts the timer (a run at a time; a run slower than the interval makes the next tick skip). */
  start(): void {
    this.#periodic.start(this.deps.intervalMs);
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#periodic.stop();
  }

  /** The last run's report, if one ran. */
  get lastRun(): RunReport | undefined {
    return this.#last;
  }

  // ------------------------------------------------------------ management (admin:>, audited)

  /** Every policy, by name. */
  async list(): Promise<{ policies: RetentionPolicyRecord[]; lastRun: RunReport | null }> {
    return { policies: await this.deps.store.list(), lastRun: this.#last ?? null };
  }

  /** One policy. */
  async get(name: string): Promise<RetentionPolicyRecord> {
    const r = await this.deps.store.get(name);
    if (r === undefined) throw new CdsError('NOT_FOUND', `no retention policy '${name}'`);
    return r;
  }

  /** Creates or replaces a policy (PUT); `created` says which. */
  async put(
    name: string,
    body: unknown,
    caller: Caller,
  ): Promise<{ policy: RetentionPolicyRecord; created: boolean }> {
    const errs = nameErrors(name);
    if (errs.length > 0) throw validationError(`'${name}' is not a valid policy name`, errs);
    const input = parsePolicy(body);
    const cur = await this.deps.store.get(name);
    const stored = cur?.version ?? 0;
    if (input.version !== undefined && input.version !== stored)
      throw new CdsError(
        'VERSION_CONFLICT',
        stored === 0
          ? `no retention policy '${name}' is stored (version ${input.version} expected)`
          : `retention policy '${name}' is at version ${stored}, not ${input.version}`,
        { details: { version: stored } },
      );
    const clash = (await this.deps.store.list()).find(
      (p) => p.name !== name && p.pattern === input.limits.pattern,
    );
    if (clash !== undefined)
      throw new CdsError(
        'ALREADY_EXISTS',
        `retention policy '${clash.name}' already governs pattern '${clash.pattern}'`,
        {
          details: {
            errors: [
              { path: '/pattern', code: 'duplicate', message: `already the pattern of '${clash.name}'` },
            ],
          },
        },
      );
    const at = new Date().toISOString();
    const record: RetentionPolicyRecord = {
      name,
      version: stored + 1,
      ...input.limits,
      createdAt: cur?.createdAt ?? at,
      updatedAt: at,
      updatedBy: caller.principalId,
    };
    await this.deps.store.put(record);
    await this.reload();
    await this.deps.audit.append({
      actor: caller.principalId,
      action: cur === undefined ? 'retention.create' : 'retention.update',
      target: name,
      details: { version: record.version, ...input.limits },
    });
    return { policy: record, created: cur === undefined };
  }

  /** Deletes a policy (its topics fall to the next matching policy, or are kept for ever). */
  async remove(name: string, caller: Caller, expectedVersion?: number): Promise<void> {
    const cur = await this.deps.store.get(name);
    if (cur === undefined) throw new CdsError('NOT_FOUND', `no retention policy '${name}'`);
    if (!(await this.deps.store.delete(name, expectedVersion)))
      throw new CdsError('NOT_FOUND', `no retention policy '${name}'`);
    await this.reload();
    await this.deps.audit.append({
      actor: caller.principalId,
      action: 'retention.delete',
      target: name,
      details: { version: cur.version, pattern: cur.pattern },
    });
  }

  // ------------------------------------------------------------ application

  /** One run over every partition (the timer calls it; tests call it directly). */
  run(now = Date.now()): Promise<RunReport> {
    return this.#periodic.run(now);
  }

  async #run(now: number): Promise<RunReport> {
    const t0 = performance.now();
    const out: PartitionRun[] = [];
    for (const ext of this.deps.log.extents()) {
      if (this.#stopped) break;
      out.push(await this.#applier.apply(ext.partition, this.#set, now));
    }
    const durationMs = performance.now() - t0;
    this.deps.metrics.lastRunSeconds.set(durationMs / 1000);
    this.deps.metrics.runs.inc();
    const report: RunReport = { at: new Date(now).toISOString(), durationMs, partitions: out };
    this.#last = report;
    return report;
  }
}
