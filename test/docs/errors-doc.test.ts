/** docs/errors.md must list every registry code with the registry's statuses, and nothing else. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ERROR_CODES } from '../../src/errors/codes.ts';

describe('docs/errors.md', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const m = /^\| `([A-Z_]+)` \| (\d+) \| [A-Z_]+ \((\d+)\) \| (\d+) \| (yes|no) \|/.exec(line);
    if (m) rows.set(m[1] as string, m.slice(2, 6) as string[]);
  }

  it('documents every code with its HTTP, gRPC and WebSocket codes and retriable flag', () => {
    for (const [code, s] of Object.entries(ERROR_CODES)) {
      assert.deepEqual(
        rows.get(code),
        [String(s.http), String(s.grpc), String(s.ws), s.retriable ? 'yes' : 'no'],
        code,
      );
    }
  });

  it('documents no code that the registry does not have', () => {
    for (const code of rows.keys()) assert.ok(code in ERROR_CODES, code);
  });

  it('uses each WebSocket close code once: 4000-4499 exactly for the retriable codes', () => {
    const ws = Object.values(ERROR_CODES).map((s) => s.ws);
    assert.equal(new Set(ws).size, ws.length);
    for (const [code, s] of Object.entries(ERROR_CODES))
      assert.equal(s.ws >= 4000 && s.ws < 4500, s.retriable, code);
  });
});
