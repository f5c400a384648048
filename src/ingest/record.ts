/**
 * How a routed decision is stored in the log, and read back. The payload is the decision's JSON,
 * encoded once at ingest and never re-encoded (DESIGN 9); routing results travel as headers so that a
 * reader (or a foreign Pulsar consumer) gets them without parsing the body.
 */
import type { Decision } from '../domain/decision.ts';
import { formatPosition } from '../domain/position.ts';
import type { AppendRecord, LogRecord } from '../log/index.ts';
import type { DecisionIndexEntry } from '../state/index.ts';

/** Header names in stored records (stable: external consumers read them). */
export const HEADERS = {
  decisionId: 'decisionId',
  revision: 'revision',
  priority: 'priority',
  topics: 'topics',
  key: 'key',
  /** Version of the rule set that routed the decision (ADR 0013). */
  ruleSet: 'ruleSet',
  /** Ids of the rules whose condition held, space-separated, in rule order. */
  rules: 'rules',
  /** RFC 3339 time before which the decision is not to be delivered (hold/delay actions). */
  holdUntil: 'holdUntil',
  /** The quarantine topic, when a rule quarantined the decision. */
  quarantine: 'quarantine',
  /** The decision's `type` (delivery expedites halt and cancel without parsing the body). */
  type: 'type',
  /** The decision's `expiresAt`, when it has one (delivery skips expired decisions without parsing). */
  expiresAt: 'expiresAt',
} as const;

/** What routing decided for one decision. */
export interface RouteOutcome {
  /** Empty when a rule dropped the decision. */
  readonly topics: readonly string[];
  readonly key: string;
  readonly priority: number;
  /** The default route's topic, which publish scopes are checked against (topics[0] when absent). */
  readonly defaultTopic?: string;
  /** Version of the rule set that routed it. */
  readonly ruleSet?: number;
  readonly matchedRules?: readonly string[];
  readonly dropped?: true;
  /** The quarantine topic. */
  readonly quarantined?: string;
  readonly holdUntil?: string;
}

/** The routing facts recorded in a stored record's headers (ADR 0013). */
export interface RecordedRoute {
  /** Absent for records stored before rule sets existed. */
  readonly ruleSet?: number;
  readonly rules: string[];
  readonly holdUntil?: string;
  readonly quarantined?: string;
}

/** A decision with its envelope, as the API returns it (DESIGN 3). */
export interface StoredDecision {
  readonly decisionId: string;
  readonly revision: number;
  readonly position: string;
  readonly epoch: string;
  readonly key: string;
  readonly topics: readonly string[];
  readonly priority: number;
  readonly receivedAt: string;
  readonly decision: Decision;
}

/** The log record of a routed decision. */
export function toRecord(d: Decision, route: RouteOutcome, receivedAt: number): AppendRecord {
  // Plain assignments, not conditional spreads: this runs for every decision published.
  const headers: Record<string, string> = {
    [HEADERS.decisionId]: d.decisionId,
    [HEADERS.revision]: String(d.revision),
    [HEADERS.priority]: String(route.priority),
    [HEADERS.topics]: route.topics.join(' '),
    [HEADERS.type]: d.type,
  };
  if (d.expiresAt !== undefined) headers[HEADERS.expiresAt] = d.expiresAt;
  if (route.ruleSet !== undefined) headers[HEADERS.ruleSet] = String(route.ruleSet);
  if (route.matchedRules !== undefined && route.matchedRules.length > 0)
    headers[HEADERS.rules] = route.matchedRules.join(' ');
  if (route.holdUntil !== undefined) headers[HEADERS.holdUntil] = route.holdUntil;
  if (route.quarantined !== undefined) headers[HEADERS.quarantine] = route.quarantined;
  const text = JSON.stringify(d);
  return {
    key: route.key,
    timestamp: receivedAt,
    headers,
    payload: Buffer.from(text, 'utf8'),
    memo: { text, value: d },
  };
}

/** Topics from a record's header. */
export function recordTopics(r: { headers: Readonly<Record<string, string>> }): string[] {
  const t = r.headers[HEADERS.topics];
  return t === undefined || t === '' ? [] : t.split(' ');
}

/** The routing facts of a record's headers. */
export function recordRoute(r: { headers: Readonly<Record<string, string>> }): RecordedRoute {
  const v = r.headers[HEADERS.ruleSet];
  const rules = r.headers[HEADERS.rules];
  const hold = r.headers[HEADERS.holdUntil];
  const q = r.headers[HEADERS.quarantine];
  return {
    ...(v === undefined ? {} : { ruleSet: Number(v) }),
    rules: rules === undefined || rules === '' ? [] : rules.split(' '),
    ...(hold === undefined ? {} : { holdUntil: hold }),
    ...(q === undefined ? {} : { quarantined: q }),
  };
}

/** The decision of a record. */
export function recordDecision(r: LogRecord): Decision {
  return JSON.parse(
    Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength).toString('utf8'),
  ) as Decision;
}

/** The API view of a stored record. */
export function toStored(
  r: LogRecord,
  epoch: string,
  decision: Decision = recordDecision(r),
): StoredDecision {
  return {
    decisionId: decision.decisionId,
    revision: decision.revision,
    position: formatPosition(r.partition, r.offset),
    epoch,
    key: r.key,
    topics: recordTopics(r),
    priority: Number(r.headers[HEADERS.priority] ?? decision.priority),
    receivedAt: new Date(r.timestamp).toISOString(),
    decision,
  };
}

/** The index entry of a stored decision. */
export function toIndexEntry(
  d: Decision,
  topics: readonly string[],
  priority: number,
  partition: number,
  offset: number,
  receivedAt: number,
): DecisionIndexEntry {
  return {
    decisionId: d.decisionId,
    revision: d.revision,
    partition,
    offset,
    receivedAt,
    portfolioId: d.portfolioId,
    strategyId: d.strategyId,
    symbol: d.instrument.symbol,
    assetClass: d.instrument.assetClass,
    type: d.type,
    verdict: d.policy.verdict,
    priority,
    topics,
  };
}
