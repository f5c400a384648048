/**
 * A trie of topic patterns (DESIGN 4, 9): matching a topic walks one path per wildcard branch, so its
 * cost grows with the topic's depth and the patterns that do match, not with the number of patterns.
 */
import { validationError } from '../errors/index.ts';
import { patternErrors } from '../domain/topics.ts';

interface Node<T> {
  /** Children by literal token. */
  readonly children: Map<string, Node<T>>;
  /** The `*` child, if any pattern has `*` at this depth. */
  star: Node<T> | undefined;
  /** Values of patterns that end exactly here. */
  readonly exact: Set<T>;
  /** Values of patterns that have `>` right after this node (one or more further tokens). */
  readonly rest: Set<T>;
}

const node = <T>(): Node<T> => ({ children: new Map(), star: undefined, exact: new Set(), rest: new Set() });

/** Maps topic patterns (`*` one token, `>` the rest, as in NATS) to values; `match` returns every value of a matching pattern. */
export class PatternIndex<T> {
  readonly #root: Node<T> = node();
  #size = 0;

  /** Number of (pattern, value) pairs held. */
  get size(): number {
    return this.#size;
  }

  /** Adds `value` under `pattern` (a set: adding the same pair twice keeps one); refuses an invalid pattern with VALIDATION_FAILED. */
  add(pattern: string, value: T): void {
    const errors = patternErrors(pattern);
    if (errors.length > 0) throw validationError(`invalid topic pattern '${pattern}'`, errors);
    const tokens = pattern.split('.');
    let n = this.#root;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i] as string;
      if (t === '>') {
        if (!n.rest.has(value)) this.#size++;
        n.rest.add(value);
        return;
      }
      let next: Node<T> | undefined;
      if (t === '*') next = n.star ??= node();
      else {
        next = n.children.get(t);
        if (next === undefined) n.children.set(t, (next = node()));
      }
      n = next;
    }
    if (!n.exact.has(value)) this.#size++;
    n.exact.add(value);
  }

  /** Removes `value` from `pattern`; returns whether it was there. Empty branches are pruned. */
  remove(pattern: string, value: T): boolean {
    if (patternErrors(pattern).length > 0) return false;
    const tokens = pattern.split('.');
    const path: Array<{ parent: Node<T>; token: string }> = [];
    let n = this.#root;
    let removed = false;
    for (const t of tokens) {
      if (t === '>') {
        removed = n.rest.delete(value);
        break;
      }
      const next = t === '*' ? n.star : n.children.get(t);
      if (next === undefined) return false;
      path.push({ parent: n, token: t });
      n = next;
    }
    if (tokens[tokens.length - 1] !== '>') removed = n.exact.delete(value);
    if (!removed) return false;
    this.#size--;
    // Prune from the deepest node up while nodes hold nothing, so a churn of patterns does not leak.
    for (let i = path.length - 1; i >= 0; i--) {
      const { parent, token } = path[i] as { parent: Node<T>; token: string };
      const child = token === '*' ? parent.star : parent.children.get(token);
      if (child === undefined || !isEmpty(child)) break;
      if (token === '*') parent.star = undefined;
      else parent.children.delete(token);
    }
    return true;
  }

  /** Every value whose pattern matches `topic` (a valid topic name). */
  match(topic: string): Set<T> {
    const out = new Set<T>();
    collect(this.#root, topic.split('.'), 0, out);
    return out;
  }

  /** Every value whose pattern matches at least one of `topics`, each value once. */
  matchAny(topics: readonly string[]): Set<T> {
    const out = new Set<T>();
    for (const topic of topics) collect(this.#root, topic.split('.'), 0, out);
    return out;
  }
}

function isEmpty<T>(n: Node<T>): boolean {
  return n.children.size === 0 && n.star === undefined && n.exact.size === 0 && n.rest.size === 0;
}

function addAll<T>(from: Set<T>, out: Set<T>): void {
  for (const v of from) out.add(v);
}

function collect<T>(n: Node<T>, tokens: readonly string[], i: number, out: Set<T>): void {
  if (i === tokens.length) {
    addAll(n.exact, out);
    return;
  }
  // `>` needs at least one more token, which holds here since i < tokens.length.
  if (n.rest.size > 0) addAll(n.rest, out);
  const next = n.children.get(tokens[i] as string);
  if (next !== undefined) collect(next, tokens, i + 1, out);
  if (n.star !== undefined) collect(n.star, tokens, i + 1, out);
}
