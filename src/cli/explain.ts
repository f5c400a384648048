/**
 * `cds explain DECISION_ID [--revision N] [--json]`: why a decision went where it went (GET
 * /v1/decisions/{id}/route), as a short text by default or the JSON answer with --json.
 */
import { call, type ClientOptions } from './client.ts';

interface RuleLine {
  readonly id: string;
  readonly index?: number;
  readonly condition?: string;
  readonly topics?: readonly unknown[];
  readonly actions?: Record<string, unknown>;
  readonly endedEvaluation?: string;
}

interface Explanation {
  readonly decisionId: string;
  readonly revision: number;
  readonly position: string;
  readonly ruleSet: { version: number; recordedAtIngest: boolean; activeNow: boolean };
  readonly matchedRules: readonly RuleLine[];
  readonly topics: readonly string[];
  readonly key: string;
  readonly priority: number;
  readonly dropped?: boolean;
  readonly quarantined?: string;
  readonly holdUntil?: string;
  readonly reevaluation?: { consistent: boolean };
  readonly subscriptions: {
    took: readonly { subscription: string; state: string }[];
    filtered: readonly { subscription: string; reason: string; field?: string; error?: string }[];
  };
}

/** The text form of an explanation. */
export function formatExplain(e: Explanation): string {
  const lines: string[] = [];
  lines.push(`${e.decisionId} revision ${e.revision} at ${e.position}`);
  lines.push(
    `rule set v${e.ruleSet.version}${e.ruleSet.activeNow ? ' (active now)' : ''}${e.ruleSet.recordedAtIngest ? '' : ' (not recorded at ingest: stored before rule sets)'}`,
  );
  if (e.matchedRules.length === 0) lines.push('  no rule matched');
  for (const r of e.matchedRules) {
    const topics = (r.topics ?? []).map((t) => (typeof t === 'string' ? t : JSON.stringify(t))).join(', ');
    lines.push(
      `  matched #${r.index ?? '?'} ${r.id}: ${r.condition ?? ''}${topics ? ` -> ${topics}` : ''}` +
        `${r.actions ? ` actions ${JSON.stringify(r.actions)}` : ''}${r.endedEvaluation ? ` [${r.endedEvaluation}: evaluation ended]` : ''}`,
    );
  }
  const outcome = e.dropped
    ? 'dropped (stored, delivered to nobody)'
    : e.quarantined !== undefined
      ? `quarantined on ${e.quarantined}`
      : `topics ${e.topics.join(', ')}`;
  lines.push(`outcome: ${outcome}; key ${e.key}; priority ${e.priority}`);
  if (e.holdUntil !== undefined) lines.push(`held until ${e.holdUntil}`);
  if (e.reevaluation !== undefined && !e.reevaluation.consistent)
    lines.push('note: re-evaluating this version today gives another outcome (see --json)');
  for (const s of e.subscriptions.took) lines.push(`  took: ${s.subscription} (${s.state})`);
  for (const s of e.subscriptions.filtered)
    lines.push(
      `  filtered: ${s.subscription} (${s.reason}${s.field ? ` ${s.field}` : ''}${s.error ? `: ${s.error}` : ''})`,
    );
  return lines.join('\n');
}

/** Fetches and renders the explanation of one decision. */
export async function explainDecision(
  opts: ClientOptions,
  decisionId: string,
  o: { revision?: string; json: boolean },
): Promise<string> {
  const q = o.revision === undefined ? '' : `?revision=${encodeURIComponent(o.revision)}`;
  const e = (await call(
    opts,
    'GET',
    `/v1/decisions/${encodeURIComponent(decisionId)}/route${q}`,
  )) as Explanation;
  return o.json ? JSON.stringify(e, null, 2) : formatExplain(e);
}
