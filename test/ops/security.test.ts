/**
 * Security properties across the tool: `export` never writes through a
 * symlink that already sits at (or dangles at) its target, so nothing lands
 * outside the target; the binary cache sets no cookies on any response and
 * serves nothing outside the store for traversal attempts.
 */

import { existsSync, lstatSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { addPath } from '../../src/fs/add.js';
import { storePathHashPart } from '../../src/nix/store-path.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { cleanTempDirs, tempDir } from '../helpers/ops-store.js';
import { type Harness, rawRequest, startHarness } from '../server/harness.js';

afterAll(cleanTempDirs);

describe.skipIf(!cliBuilt())('export refuses a pre-existing symlink at its target', () => {
  let root: string;
  let treePath: string;
  let filePath: string;
  beforeAll(async () => {
    root = tempDir();
    const src = tempDir();
    mkdirSync(join(src, 'tree', 'sub'), { recursive: true });
    writeFileSync(join(src, 'tree', 'sub', 'f'), 'payload');
    writeFileSync(join(src, 'single'), 'payload');
    treePath = (await runCli(['add', join(src, 'tree'), '--root', root])).stdout.trim();
    filePath = (await runCli(['add', join(src, 'single'), '--root', root])).stdout.trim();
    expect(treePath).toMatch(/^\/nix\/store\//);
  }, 60_000);

  for (const [what, target] of [
    ['a dangling symlink (directory tree)', () => treePath],
    ['a dangling symlink (single file)', () => filePath],
  ] as const) {
    it(`${what}: fails and writes nothing where the link points`, async () => {
      const work = tempDir();
      const victim = join(work, 'victim');
      const link = join(work, 'out');
      symlinkSync(victim, link);
      const r = await runCli(['export', target(), link, '--root', root]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^ERR_IO: .*already exists/);
      expect(existsSync(victim)).toBe(false);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
    });
  }

  it('a symlink to an existing directory: fails and leaves the directory empty', async () => {
    const work = tempDir();
    const victim = join(work, 'victim');
    mkdirSync(victim);
    const link = join(work, 'out');
    symlinkSync(victim, link);
    const r = await runCli(['export', treePath, link, '--root', root]);
    expect(r.code).toBe(1);
    expect(existsSync(join(victim, 'sub'))).toBe(false);
  });
});

describe('the binary cache', () => {
  let h: Harness;
  let hash: string;
  beforeAll(async () => {
    const cache = await openCache({ memory: true });
    const src = tempDir();
    writeFileSync(join(src, 'f'), 'served');
    hash = storePathHashPart((await addPath(cache, join(src, 'f'))).storePath);
    h = await startHarness({ cache });
  });
  afterAll(() => h.close());

  it('sets no cookie on any response', async () => {
    const narinfo = await rawRequest(h.port, 'GET', `/${hash}.narinfo`);
    expect(narinfo.status).toBe(200);
    const url = /^URL: (.*)$/m.exec(narinfo.body.toString())![1]!;
    for (const path of [
      '/',
      '/nix-cache-info',
      `/${hash}.narinfo`,
      `/${url}`,
      '/nope',
      `/${'0'.repeat(32)}.narinfo`,
    ]) {
      const r = await rawRequest(h.port, 'GET', path);
      expect(r.headers['set-cookie'], path).toBeUndefined();
    }
    const put = await rawRequest(h.port, 'PUT', `/${hash}.narinfo`, {}, Buffer.from('x'));
    expect(put.headers['set-cookie']).toBeUndefined();
  });

  it('serves nothing outside the store for traversal attempts', async () => {
    for (const path of [
      '/../../../../etc/passwd',
      '/nar/../../etc/passwd',
      '/nar/..%2f..%2fetc%2fpasswd.nar',
      '/%2e%2e/%2e%2e/etc/passwd',
      '//etc/passwd',
      `/${hash}.narinfo/../../etc/passwd`,
    ]) {
      const r = await rawRequest(h.port, 'GET', path);
      expect(r.status, path).toBeGreaterThanOrEqual(400);
      expect(r.body.toString(), path).not.toContain('root:');
    }
  });
});
