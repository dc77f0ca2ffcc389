/**
 * The `path` source through the fetcher base (what `add` uses): the store paths of docs/formats.md's worked
 * examples (docs/formats.md §3: NAR sha256 of the file `asdf` named `my-file`, flat sha256 of `hello`),
 * a pinned path answered from the cache without reading the file, and a mismatch storing nothing.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { pathSource } from '../../src/fetchers/path.js';
import type { Ingested } from '../../src/fetchers/source.js';
import { addPath } from '../../src/fs/add.js';
import { hashPath } from '../../src/fs/hash.js';
import { formatStorePath } from '../../src/nix/store-path.js';
import { buildTree, TREE_CASES } from '../helpers/trees.js';

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

/** The path source alone (no path info written), with the context fields it reads. */
async function ingestPath(cache: Cache, path: string): Promise<Ingested> {
  const out = await pathSource.ingest({ type: 'path', path }, {
    cache,
    algo: 'sha256',
  } as unknown as Parameters<typeof pathSource.ingest>[1]);
  if (out.notModified) throw new Error('unexpected notModified');
  return out;
}

describe('the NAR hash computed while the tree is read', () => {
  // Every tree shape but the >100 MiB one: modes, symlinks (also as root), empty files and dirs,
  // unusual and non-UTF-8 names, sort order, deep nesting, many small files.
  for (const tc of TREE_CASES.filter((t) => !t.large)) {
    it(`${tc.name}: equals the NAR rendered back from the store and \`hash path\``, async () => {
      const parent = await mkdtemp(join(tmpdir(), 'fc-path-nar-'));
      try {
        const root = await buildTree(tc, parent);
        const cache = await openCache({ memory: true });
        const out = await ingestPath(cache, root);
        expect(out.narSum).toBeDefined();
        const rendered = await cache.narCalc.calculate(out.node);
        expect(Buffer.from(out.narSum!.narSha256).toString('hex')).toBe(
          Buffer.from(rendered.narSha256).toString('hex'),
        );
        expect(out.narSum!.narSize).toBe(rendered.narSize);
        const ours = await hashPath(root);
        expect(Buffer.from(out.narSum!.narSha256).toString('hex')).toBe(
          Buffer.from(ours.hash.digest).toString('hex'),
        );
        await cache.close();
      } finally {
        await rm(parent, { recursive: true, force: true });
      }
    });
  }

  it('a tree with a file over 256 KiB leaves the NAR to the render from the store', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'fc-path-nar-'));
    try {
      await writeFile(join(parent, 'a'), 'small');
      await writeFile(join(parent, 'big'), Buffer.alloc(300 * 1024, 7));
      const cache = await openCache({ memory: true });
      const out = await ingestPath(cache, parent);
      expect(out.narSum).toBeUndefined();
      await cache.close();
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
