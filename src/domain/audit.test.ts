import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainNext, findChainBreak, type AuditRecord } from './audit.ts';

describe('audit chain', () => {
  const chain = (): AuditRecord[] => {
    const out: AuditRecord[] = [];
    for (let i = 0; i < 5; i++)
      out.push(
        chainNext(out[i - 1], { actor: 'a', action: 'x.y', target: `t${i}`, details: { i } }, new Date(0)),
      );
    return out;
  };
  it('verifies an intact chain', () => assert.equal(findChainBreak(chain()), undefined));
  it('detects an edited record', () => {
    const c = chain();
    c[2] = { ...(c[2] as AuditRecord), target: 'edited' };
    assert.equal(findChainBreak(c)?.seq, 3);
  });
  it('detects a removed record', () => {
    const c = chain();
    c.splice(1, 1);
    assert.match(findChainBreak(c)?.reason ?? '', /removed/);
  });
  it('detects a record rewritten with a fresh hash (its successor no longer links)', () => {
    const c = chain();
    const { hash: _h, ...rest } = { ...(c[1] as AuditRecord), target: 'forged' };
    c[1] = chainNext(
      c[0],
      { actor: rest.actor, action: rest.action, target: rest.target, details: rest.details },
      new Date(0),
    );
    assert.equal(findChainBreak(c)?.seq, 3);
  });
});
