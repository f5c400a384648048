import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allows, isGlobalAdmin, parseScopes, scopeErrors } from './scopes.ts';

describe('scopes', () => {
  it('grants actions on matching topics; admin implies publish and subscribe', () => {
    const g = parseScopes(['publish:decisions.equity.>', 'subscribe:decisions.*.pf-1', 'admin:ops.>']);
    assert.equal(allows(g, 'publish', 'decisions.equity.pf-9'), true);
    assert.equal(allows(g, 'publish', 'decisions.fx.pf-9'), false);
    assert.equal(allows(g, 'subscribe', 'decisions.fx.pf-1'), true);
    assert.equal(allows(g, 'subscribe', 'decisions.fx.pf-2'), false);
    assert.equal(allows(g, 'publish', 'ops.x'), true);
    assert.equal(isGlobalAdmin(g), false);
    assert.equal(isGlobalAdmin(parseScopes(['admin:>'])), true);
  });

  it('reports each bad scope by index', () => {
    const e = scopeErrors(['publish:a.b', 'read:x', 'subscribe:a.>.b', 'admin']);
    assert.deepEqual(
      e.map((x) => x.path),
      ['scopes/1', 'scopes/2', 'scopes/3'],
    );
  });
});
