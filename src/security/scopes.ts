/**
 * Scopes (DESIGN 8): `<action>:<pattern>` grants, for example `publish:decisions.equity.>`. An
 * `admin` grant on a pattern also grants `publish` and `subscribe` there; endpoints that are not about
 * topics (keys, audit, status) need `admin:>`.
 */
import type { FieldError } from '../errors/index.ts';
import { patternErrors, topicMatches } from '../domain/topics.ts';

/** What a scope grants. */
export type Action = 'publish' | 'subscribe' | 'admin';
const ACTIONS: ReadonlySet<string> = new Set(['publish', 'subscribe', 'admin']);

/** One parsed grant. */
export interface Grant {
  readonly action: Action;
  readonly pattern: string;
}

/** Field errors of a scope list (empty when valid). */
export function scopeErrors(scopes: readonly string[], path = 'scopes'): FieldError[] {
  const out: FieldError[] = [];
  scopes.forEach((s, i) => {
    const at = s.indexOf(':');
    const action = at < 0 ? s : s.slice(0, at);
    if (at < 0 || !ACTIONS.has(action)) {
      out.push({
        path: `${path}/${i}`,
        code: 'invalid_scope',
        message: `'${s}' is not <publish|subscribe|admin>:<pattern>`,
      });
      return;
    }
    out.push(...patternErrors(s.slice(at + 1), `${path}/${i}`));
  });
  return out;
}

/** Parses valid scopes into grants (call scopeErrors first on untrusted input; bad entries are skipped). */
export function parseScopes(scopes: readonly string[]): Grant[] {
  const grants: Grant[] = [];
  for (const s of scopes) {
    const at = s.indexOf(':');
    const action = s.slice(0, at);
    const pattern = s.slice(at + 1);
    if (at > 0 && ACTIONS.has(action) && patternErrors(pattern).length === 0)
      grants.push({ action: action as Action, pattern });
  }
  return grants;
}

/**
 * Answers already computed per grant list (a principal's grants are one array for as long as its
 * context is cached), so the publish path checks a topic once, not once per decision. Bounded.
 */
const memo = new WeakMap<readonly Grant[], Map<string, boolean>>();
const MEMO_LIMIT = 10_000;

/** Whether grants allow `action` on `topic` (admin implies the others). */
export function allows(grants: readonly Grant[], action: Action, topic: string): boolean {
  let m = memo.get(grants);
  if (m === undefined) memo.set(grants, (m = new Map()));
  const k = `${action}\u0000${topic}`;
  let v = m.get(k);
  if (v === undefined) {
    v = false;
    for (const g of grants) {
      if ((g.action === action || g.action === 'admin') && topicMatches(g.pattern, topic)) {
        v = true;
        break;
      }
    }
    if (m.size >= MEMO_LIMIT) m.clear();
    m.set(k, v);
  }
  return v;
}

/** Whether grants include global administration (`admin:>`). */
export function isGlobalAdmin(grants: readonly Grant[]): boolean {
  return grants.some((g) => g.action === 'admin' && g.pattern === '>');
}
