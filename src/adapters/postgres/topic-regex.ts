/**
 * Topic patterns (domain/topics.ts) as PostgreSQL regular expressions, so that the topic filter of a
 * decision query runs in SQL. The translation matches exactly what `topicMatches` matches: `*` is any
 * one token (an empty one included), `>` one or more remaining tokens, anything else a literal token.
 */

/** An anchored PostgreSQL (ARE) regular expression equivalent to `topicMatches(pattern, ·)`. */
export function topicPatternRegex(pattern: string): string {
  const tokens = pattern.split('.');
  let re = '^';
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (i > 0) re += '\\.';
    if (t === '>') return `${re}.*$`;
    // A backslash before a non-alphanumeric character quotes it in ARE; alphanumerics stand as they are.
    re += t === '*' ? '[^.]*' : t.replace(/[^A-Za-z0-9]/g, (c) => `\\${c}`);
  }
  return `${re}$`;
}
