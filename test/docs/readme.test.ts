/** The README stays true: the two-command quick start, and a configuration reference with every key. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ENV_VARS } from '../../src/config/schema.ts';

describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('begins with a quick start of exactly two commands', () => {
    const block = /## Quick start\s+```sh\n([\s\S]*?)```/.exec(readme);
    assert.ok(block, 'a Quick start section with a sh block');
    const commands = (block[1] as string).split('\n').filter((l) => l.trim().length > 0);
    assert.equal(commands.length, 2);
    assert.match(commands[0] as string, /^npm ci && npm start\b/);
    assert.match(commands[1] as string, /^npm ci && npm test\b/);
  });

  it('lists every configuration key with its CDS_* variable', () => {
    for (const [variable, key] of Object.entries(ENV_VARS)) {
      assert.ok(readme.includes(`| \`${key}\` | \`${variable}\` |`), `${key} / ${variable}`);
    }
  });
});
