/**
 * The dependency picture of docs/architecture.md, enforced: no import cycles in src/, adapters import
 * only ports, domain and errors, transports never import the composition root or an adapter, and
 * only the composition root (and the offline verify-audit command) picks adapters.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(fileURLToPath(new URL('../../src', import.meta.url)));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return files(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

/** Relative imports of each source file (static, dynamic and type-only), as paths under src/. */
function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of files(SRC)) {
    const text = readFileSync(f, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      deps.push(relative(SRC, resolve(dirname(f), m[1] as string)));
    }
    g.set(relative(SRC, f), deps);
  }
  return g;
}

describe('import structure', () => {
  const g = graph();

  it('has no import cycles', () => {
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[] = [];
    const visit = (n: string, path: string[]) => {
      if (state.get(n) === 'done') return;
      if (state.get(n) === 'visiting') {
        cycles.push([...path.slice(path.indexOf(n)), n].join(' -> '));
        return;
      }
      state.set(n, 'visiting');
      for (const d of g.get(n) ?? []) visit(d, [...path, n]);
      state.set(n, 'done');
    };
    for (const n of g.keys()) visit(n, []);
    assert.deepEqual(cycles, []);
  });

  it('adapters import only ports, domain, errors and their own folder', () => {
    for (const [f, deps] of g) {
      if (!f.startsWith('adapters/')) continue;
      const own = f.split('/').slice(0, 2).join('/');
      for (const d of deps) {
        const ok =
          d.startsWith(own) ||
          d.startsWith('domain/') ||
          d.startsWith('errors/') ||
          /^(log|state)\/([a-z]+-)?(port|index)\.ts$/.test(d) ||
          d === 'ledger/port.ts' || // the LedgerStore port (ADR 0011) lives beside the ledger
          // test support (the crash-test writer process) may use the contract helpers
          (/crash-writer\.ts$/.test(f) && /^(log|state)\/contract/.test(d));
        assert.ok(ok, `${f} imports ${d}`);
      }
    }
  });

  it('only the composition root picks adapters; transports never import it', () => {
    for (const [f, deps] of g) {
      for (const d of deps) {
        if (d.startsWith('adapters/') && !f.startsWith('adapters/'))
          assert.ok(
            ['app.ts', 'embedded-stores.ts', 'cli/verify-audit.ts', 'cli/backup.ts'].includes(f),
            `${f} imports ${d}`,
          );
        if (f.startsWith('transports/'))
          assert.ok(d !== 'app.ts' && !d.startsWith('cli/'), `${f} imports ${d}`);
        if (f.startsWith('domain/'))
          assert.ok(d.startsWith('domain/') || d.startsWith('errors/'), `${f} imports ${d}`);
      }
    }
  });
});
