/**
 * The subscription matcher (DESIGN 4, 9): which subscriptions take a routed decision. Entries whose
 * filter has index terms are found through field hash indexes and then checked against their
 * patterns; the others are found through the pattern trie and then checked against their filter.
 * Either way the work per decision follows the candidates, not the number of subscriptions.
 */
import { CdsError, validationError, type FieldError } from '../errors/index.ts';
import { patternErrors } from '../domain/topics.ts';
import type { CompiledCel } from './cel.ts';
import { tryAnalyseFilter, type AnalysedFilter } from './filter-analysis.ts';
import { TermIndex, type CompiledTerm } from './term-index.ts';
import { PatternIndex } from './topic-trie.ts';

/** A subscription as the matcher sees it. */
export interface SubscriptionEntry {
  /** Subscription id, unique in the matcher. */
  readonly id: string;
  /** Topic patterns (one or more); a decision with a topic matching any of them is a candidate. */
  readonly patterns: readonly string[];
  /** Optional CEL condition over `decision`. */
  readonly filter?: string | undefined;
}

/** Why a candidate entry did or did not take a decision. */
export type ExplainVerdict =
  | { readonly id: string; readonly taken: true }
  | { readonly id: string; readonly taken: false; readonly reason: 'pattern_not_matched' }
  | {
      readonly id: string;
      readonly taken: false;
      readonly reason: 'term_not_matched';
      readonly field: string;
    }
  | { readonly id: string; readonly taken: false; readonly reason: 'remainder_false' }
  | {
      readonly id: string;
      readonly taken: false;
      readonly reason: 'evaluation_error';
      readonly error: string;
    };

interface Entry {
  readonly id: string;
  readonly patterns: readonly string[];
  readonly patternTokens: readonly (readonly string[])[];
  readonly topicTests: readonly TopicTest[];
  readonly filter: AnalysedFilter | undefined;
  /** Terms other than the one the entry is filed under (that one held when the index found it). */
  otherTerms: readonly CompiledTerm[];
  readonly remainder: CompiledCel | null;
}

/** Whether pattern tokens match topic tokens (NATS semantics, as topicMatches). */
function tokensMatch(p: readonly string[], t: readonly string[]): boolean {
  for (let i = 0; i < p.length; i++) {
    const pt = p[i];
    if (pt === '>') return t.length > i;
    if (i >= t.length) return false;
    if (pt !== '*' && pt !== t[i]) return false;
  }
  return p.length === t.length;
}

function anyPatternMatches(e: Entry, topicTokens: readonly (readonly string[])[]): boolean {
  for (const p of e.patternTokens) for (const t of topicTokens) if (tokensMatch(p, t)) return true;
  return false;
}

/** A test of one pattern against a topic string; the common shapes avoid splitting the topic. */
export type TopicTest = (topic: string) => boolean;

/** A pattern compiled into a test of topics (`topicMatches` semantics, without splitting per call). */
export function topicTest(pattern: string): TopicTest {
  const tokens = pattern.split('.');
  const wild = tokens.findIndex((t) => t === '*' || t === '>');
  if (wild < 0) return (topic) => topic === pattern;
  if (wild === tokens.length - 1 && tokens[wild] === '>') {
    const prefix = pattern.slice(0, -1); // 'a.b.' of 'a.b.>'; '' for '>' alone
    return (topic) => topic.length > prefix.length && topic.startsWith(prefix);
  }
  return (topic) => tokensMatchAt(tokens, topic);
}

/** `tokensMatch` against the topic string itself, walking it token by token (no array per call). */
function tokensMatchAt(p: readonly string[], topic: string): boolean {
  let start = 0;
  for (let i = 0; i < p.length; i++) {
    if (start > topic.length) return false; // the topic has fewer tokens than the pattern
    const pt = p[i] as string;
    if (pt === '>') return true; // at least one token remains, since start <= topic.length
    let end = topic.indexOf('.', start);
    if (end < 0) end = topic.length;
    if (pt !== '*' && (end - start !== pt.length || !topic.startsWith(pt, start))) return false;
    start = end + 1;
  }
  return start > topic.length;
}

/** Whether one of the tests passes one of the topics. */
export function anyTopicPasses(tests: readonly TopicTest[], topics: readonly string[]): boolean {
  for (let i = 0; i < tests.length; i++) {
    const test = tests[i] as TopicTest;
    for (let j = 0; j < topics.length; j++) if (test(topics[j] as string)) return true;
  }
  return false;
}

/** Validates an entry; returns it compiled or every field error. */
function compileEntry(input: SubscriptionEntry): Entry | FieldError[] {
  const errors: FieldError[] = [];
  if (typeof input.id !== 'string' || input.id.length === 0) {
    errors.push({ path: '/id', code: 'required', message: 'an entry needs a non-empty id' });
  }
  if (!Array.isArray(input.patterns) || input.patterns.length === 0) {
    errors.push({
      path: '/patterns',
      code: 'required',
      message: 'an entry needs at least one topic pattern',
    });
  } else input.patterns.forEach((p, i) => errors.push(...patternErrors(p, `/patterns/${i}`)));
  let filter: AnalysedFilter | undefined;
  if (input.filter !== undefined) {
    const f = tryAnalyseFilter(input.filter, '/filter');
    if ('code' in f) errors.push(f);
    else filter = f;
  }
  if (errors.length > 0) return errors;
  const patterns = [...new Set(input.patterns)];
  return {
    id: input.id,
    patterns,
    patternTokens: patterns.map((p) => p.split('.')),
    topicTests: patterns.map(topicTest),
    filter,
    otherTerms: filter?.indexable ?? [],
    remainder: filter === undefined ? null : filter.remainder,
  };
}

/** Matches decisions to subscriptions by topic patterns and analysed CEL filters. */
export class SubscriptionMatcher {
  readonly #entries = new Map<string, Entry>();
  readonly #byTerm = new TermIndex<Entry>();
  readonly #byPattern = new PatternIndex<Entry>();
  /** Reused between calls of `match`, which never re-enters itself. */
  readonly #scratch: Entry[] = [];
  /** Entries with a filter. */
  #filtered = 0;

  /** Number of entries. */
  get size(): number {
    return this.#entries.size;
  }

  /** Whether `match` reads the decision at all (some entry has a filter); if not, callers may skip parsing it. */
  get readsDecisions(): boolean {
    return this.#filtered > 0;
  }

  /** Adds an entry; VALIDATION_FAILED lists every bad field, ALREADY_EXISTS if the id is taken. */
  add(input: SubscriptionEntry): void {
    if (this.#entries.has(input.id))
      throw new CdsError('ALREADY_EXISTS', `subscription '${input.id}' is already in the matcher`);
    this.#insert(this.#compile(input));
  }

  /** Replaces an entry's patterns and filter at once (validated first; on error nothing changes); NOT_FOUND if absent. */
  update(input: SubscriptionEntry): void {
    if (!this.#entries.has(input.id))
      throw new CdsError('NOT_FOUND', `subscription '${input.id}' is not in the matcher`);
    const e = this.#compile(input);
    this.remove(input.id);
    this.#insert(e);
  }

  /** Removes an entry; returns whether it was there. */
  remove(id: string): boolean {
    const e = this.#entries.get(id);
    if (e === undefined) return false;
    this.#entries.delete(id);
    if (e.filter !== undefined) this.#filtered--;
    if (!this.#byTerm.remove(e)) for (const p of e.patterns) this.#byPattern.remove(p, e);
    return true;
  }

  /** Ids of the entries that take `decision` routed to `topics`: a pattern matches one topic and the filter holds. Each id once. */
  match(decision: unknown, topics: readonly string[]): string[] {
    const out: string[] = [];
    const found = this.#scratch;
    const count = this.#byTerm.collectInto(decision, found);
    next: for (let i = 0; i < count; i++) {
      const e = found[i] as Entry;
      if (!anyTopicPasses(e.topicTests, topics)) continue;
      const other = e.otherTerms;
      for (let t = 0; t < other.length; t++) if (!(other[t] as CompiledTerm).holds(decision)) continue next;
      if (e.remainder === null || e.remainder.holds(decision)) out.push(e.id);
    }
    if (this.#byPattern.size > 0) {
      for (const e of this.#byPattern.matchAny(topics)) {
        if (e.remainder === null || e.remainder.holds(decision)) out.push(e.id);
      }
    }
    return out;
  }

  /** For each entry that was a candidate (a pattern matched, or its index term did), whether it took the decision or why not. */
  explain(decision: unknown, topics: readonly string[]): ExplainVerdict[] {
    const topicTokens = topics.map((t) => t.split('.'));
    const out: ExplainVerdict[] = [];
    for (const e of this.#entries.values()) {
      const patternOk = anyPatternMatches(e, topicTokens);
      const filed = this.#byTerm.termOf(e);
      if (!patternOk && (filed === undefined || !filed.holds(decision))) continue;
      if (!patternOk) {
        out.push({ id: e.id, taken: false, reason: 'pattern_not_matched' });
        continue;
      }
      const failed = e.filter?.indexable.find((t) => !t.holds(decision));
      if (failed !== undefined) {
        out.push({ id: e.id, taken: false, reason: 'term_not_matched', field: failed.field });
        continue;
      }
      const r = e.remainder === null ? true : e.remainder.outcome(decision);
      if (r === true) out.push({ id: e.id, taken: true });
      else if (r === false) out.push({ id: e.id, taken: false, reason: 'remainder_false' });
      else out.push({ id: e.id, taken: false, reason: 'evaluation_error', error: r.error });
    }
    return out;
  }

  #compile(input: SubscriptionEntry): Entry {
    const e = compileEntry(input);
    if (Array.isArray(e)) throw validationError(`invalid subscription entry '${String(input.id)}'`, e);
    return e;
  }

  #insert(e: Entry): void {
    this.#entries.set(e.id, e);
    if (e.filter !== undefined) this.#filtered++;
    const filed = this.#byTerm.add(e, e.filter?.indexable ?? []);
    if (filed !== undefined) e.otherTerms = (e.filter?.indexable ?? []).filter((t) => t !== filed);
    else for (const p of e.patterns) this.#byPattern.add(p, e);
  }
}
