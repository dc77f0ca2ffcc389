/** Secret key and token files that others can read get a warning; private ones (0600, 0400) do not. */

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { secretFileWarning } from '../../src/fs/secret-file.js';

const dir = mkdtempSync(join(tmpdir(), 'fc-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function keyWithMode(mode: number): string {
  const p = join(dir, `key-${mode.toString(8)}`);
  writeFileSync(p, 'name:secret');
  chmodSync(p, mode);
  return p;
}

describe('secretFileWarning', () => {
  it('is silent for owner-only modes', () => {
    expect(secretFileWarning(keyWithMode(0o600))).toBeUndefined();
    expect(secretFileWarning(keyWithMode(0o400))).toBeUndefined();
  });

  it('warns for group or world access, naming who and the fix', () => {
    expect(secretFileWarning(keyWithMode(0o640))).toMatch(/mode 640: its group can access it; run chmod 600/);
    expect(secretFileWarning(keyWithMode(0o604))).toMatch(/mode 604: everyone can access it/);
    expect(secretFileWarning(keyWithMode(0o666), 'upload token file')).toMatch(
      /^upload token file '.*' has mode 666: its group and everyone/,
    );
  });

  it('says nothing about a file that does not exist (reading it fails with its own error)', () => {
    expect(secretFileWarning(join(dir, 'missing'))).toBeUndefined();
  });
});
