/**
 * The `path` source through the fetcher base (what `add` uses): the store paths of the spec's worked
 * examples (nix-formats.md §3.4: NAR sha256 of the file `asdf` named `my-file`, flat sha256 of `hello`),
 * a pinned path answered from the cache without reading the file, and a mismatch storing nothing.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { addPath } from '../../src/fs/add.js';
import { formatStorePath } from '../../src/nix/store-path.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fc-path-'));
  await writeFile(join(dir, 'asdf'), 'asdf');
  await writeFile(join(dir, 'hello'), 'hello');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('path fetches', () => {
  it('recursive and flat paths as Nix computes them', async () => {
    const cache = await openCache({ memory: true });
    const nar = await new Fetcher(cache).fetch({ type: 'path', path: join(dir, 'asdf'), name: 'my-file' });
    expect(formatStorePath(nar.storePath)).toBe('/nix/store/5hizn7xyyrhxr0k2magvxl5ccvk0ci9n-my-file');
    const flat = await addPath(cache, join(dir, 'hello'), { flat: true });
    expect(formatStorePath(flat.storePath)).toBe('/nix/store/3fhdhfqli6qm669f7sz8d8v6xz24zrqc-hello');
    await cache.close();
  });

  it('a pinned path is answered from the cache, even when the file is gone', async () => {
    const cache = await openCache({ memory: true });
    const file = join(dir, 'gone');
    await writeFile(file, 'asdf');
    const first = await new Fetcher(cache).fetch({ type: 'path', path: file });
    await rm(file);
    const hash = 'sha256-f1eduuSIYC1BofXA1tycF79Ai2NSMJQtUErx5DxLYSU=';
    const again = await new Fetcher(cache).fetch({ type: 'path', path: file, hash });
    expect(again.cached).toBe(true);
    expect(again.storePath).toEqual(first.storePath);
    await cache.close();
  });

  it('a mismatch stores nothing', async () => {
    const cache = await openCache({ memory: true });
    const e = await new Fetcher(cache)
      .fetch({
        type: 'path',
        path: join(dir, 'asdf'),
        hash: 'sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      })
      .catch((x) => x);
    expect(e.code).toBe('ERR_HASH_MISMATCH');
    expect(e.message).toMatch(/^hash mismatch in path '.*asdf': expected sha256-A+= got sha256-f1ed/);
    const all = [];
    for await (const i of cache.pathInfos.list()) all.push(i);
    expect(all).toEqual([]);
    await cache.close();
  });
});
