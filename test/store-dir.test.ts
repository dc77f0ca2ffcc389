/**
 * The store dir belongs to the data: a root records the store dir it was created with (layout.json),
 * opening it with another is ERR_STORE_DIR naming both (and changes nothing), opening it without one uses
 * the recorded one. A root from before the record adopts the store dir its fetched paths were made for
 * (recomputed from their content addresses), not blindly the first one asked for; an empty one takes the
 * first. Real LevelDB roots on disk, and the CLI as a child process.
 */

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../src/cache.js';
import { addPath } from '../src/fs/add.js';
import { formatStorePath } from '../src/nix/store-path.js';
import { cliBuilt, runCli } from './helpers/cli.js';

let work: string;
let file: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'fc-store-dir-'));
  file = join(work, 'hello.txt');
  await writeFile(file, 'hello\n');
});
afterAll(() => rm(work, { recursive: true, force: true }));

const layoutOf = async (root: string) => JSON.parse(await readFile(join(root, 'layout.json'), 'utf8'));

/** A root holding one fetched (content-addressed) path under `storeDir`; its printed store path. */
async function filled(name: string, storeDir?: string): Promise<{ root: string; path: string }> {
  const root = join(work, name);
  const cache = await openCache({ root, storeDir });
  const info = await addPath(cache, file, { flat: true });
  const path = formatStorePath(info.storePath, cache.storeDir);
  await cache.close();
  return { root, path };
}

describe('the store dir of a root', () => {
  it('is recorded at creation; another one is ERR_STORE_DIR naming both, and changes nothing', async () => {
    const { root } = await filled('nix-root');
    const before = await readFile(join(root, 'layout.json'), 'utf8');
    expect(JSON.parse(before)).toEqual({ layout: 2, storeDir: '/nix/store' });
    const e = await openCache({ root, storeDir: '/gnu/store' }).catch((x) => x);
    expect(e.code).toBe('ERR_STORE_DIR');
    expect(e.message).toContain("'/nix/store', not '/gnu/store'");
    expect(await readFile(join(root, 'layout.json'), 'utf8')).toBe(before);
    const again = await openCache({ root, storeDir: '/nix/store/' });
    expect(again.storeDir).toBe('/nix/store');
    await again.close();
  });

  it('without one asked for, the recorded one is used', async () => {
    const { root, path } = await filled('gnu-root', '/gnu/store');
    expect(path.startsWith('/gnu/store/')).toBe(true);
    const cache = await openCache({ root });
    expect(cache.storeDir).toBe('/gnu/store');
    await cache.close();
  });

  it('a root from before the record adopts the store dir its paths were made for', async () => {
    const { root } = await filled('legacy-root');
    await writeFile(join(root, 'layout.json'), '{"layout":2}\n');
    const e = await openCache({ root, storeDir: '/gnu/store' }).catch((x) => x);
    expect(e.code).toBe('ERR_STORE_DIR');
    expect(e.message).toContain("'/nix/store', not '/gnu/store'");
    expect(await layoutOf(root)).toEqual({ layout: 2, storeDir: '/nix/store' });

    const gnu = await filled('legacy-gnu-root', '/gnu/store');
    await writeFile(join(gnu.root, 'layout.json'), '{"layout":2}\n');
    const plain = await openCache({ root: gnu.root }).catch((x) => x);
    expect(plain.code).toBe('ERR_STORE_DIR');
    const right = await openCache({ root: gnu.root, storeDir: '/gnu/store' });
    await right.close();
    expect(await layoutOf(gnu.root)).toEqual({ layout: 2, storeDir: '/gnu/store' });
  });

  it('an empty root from before the record takes the first store dir it is opened with', async () => {
    const root = join(work, 'legacy-empty');
    await (await openCache({ root })).close();
    await writeFile(join(root, 'layout.json'), '{"layout":2}\n');
    await (await openCache({ root, storeDir: '/gnu/store' })).close();
    expect(await layoutOf(root)).toEqual({ layout: 2, storeDir: '/gnu/store' });
  });

  it.runIf(cliBuilt())(
    'the CLI: --store-dir /gnu/store on a /nix/store root is exit 1, ERR_STORE_DIR',
    async () => {
      const { root, path } = await filled('cli-root');
      const r = await runCli(['--root', root, '--store-dir', '/gnu/store', 'path-info', '--all']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^ERR_STORE_DIR: cache root '.*' holds paths of store dir '\/nix\/store', not '\/gnu\/store'/,
      );
      expect(r.stdout).toBe('');
      const ok = await runCli(['--root', root, 'path-info', '--all']);
      expect(ok.stdout).toBe(`${path}\n`);
    },
  );
});
