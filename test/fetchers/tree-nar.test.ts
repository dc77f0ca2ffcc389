/**
 * The one-pass NAR hash of a tarball (src/fetchers/archive/tree-nar.ts) against real Nix: trees of every
 * shape (test/helpers/trees.ts, plus a file spanning many chunks and hard links) are archived by GNU tar
 * in NAR order, in reverse order and shuffled, and ingested with the default hold window, a small one and
 * none (so the hash is written ahead on a guess, which fails for the unsorted orders and is then done
 * again from the spool, which also keeps the files hashed as they passed). Each answer must be computed on the way and be
 * the hash `nix hash path` gives the tree (and the render's); no spool is left behind. One archive also
 * goes through `nix-prefetch-url --unpack`.
 */

import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { chmod, link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openCache } from '../../src/cache.js';
import { ingestTarball } from '../../src/fetchers/tarball.js';
import { computeNarSum } from '../../src/nar-render/nar-calc.js';
import { makeHash, toSRI } from '../../src/nix/hash.js';
import { chunked } from '../helpers/archives.js';
import { nixAvailable, nixHashPath, runNixOk } from '../helpers/nix.js';
import { buildTree, prng, prngBytes, TREE_CASES, type TreeCase } from '../helpers/trees.js';

/** A file of 3 MiB and an odd tail (many FastCDC chunks, many tar records) and small ones around it. */
const spanning: TreeCase = {
  name: 'spanning',
  description: 'a file spanning many chunks between small files',
  kind: 'directory',
  async build(root) {
    await mkdir(root);
    await writeFile(join(root, 'a-small'), 'a\n');
    await writeFile(join(root, 'big.bin'), prngBytes(0x5a, 3 * 1024 * 1024 + 4321));
    await chmod(join(root, 'big.bin'), 0o755);
    await writeFile(join(root, 'z-small'), 'z\n');
  },
};

/** Hard links: tar stores the second name of a file as a link member, which must become a copy. */
const hardLinks: TreeCase = {
  name: 'hard-links',
  description: 'files with several names in different directories',
  kind: 'directory',
  async build(root) {
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'sub', 'orig'), prngBytes(7, 70_000));
    await chmod(join(root, 'sub', 'orig'), 0o755);
    await link(join(root, 'sub', 'orig'), join(root, 'a-link'));
    await link(join(root, 'sub', 'orig'), join(root, 'sub', 'z-link'));
    await writeFile(join(root, 'plain'), 'plain\n');
  },
};

/** The NAR hash's spool directories this process left in the OS temp dir (none, ever). */
const spools = () => readdirSync(tmpdir()).filter((f) => f.startsWith(`tar-nar-${process.pid}-`));

const SHAPES = [...TREE_CASES.filter((c) => c.kind === 'directory' && !c.large), spanning, hardLinks];

type Order = 'sorted' | 'reverse' | 'shuffled';

/** The tree at `parent/name` as a tar.gz whose members come in `order` (GNU tar, no recursion). */
function archiveOf(parent: string, name: string, order: Order, out: string): void {
  const found = spawnSync('find', [name, '-print0'], { cwd: parent, encoding: 'buffer' });
  const paths = found.stdout
    .toString('latin1')
    .split('\0')
    .filter((p) => p !== '');
  paths.sort();
  if (order === 'reverse') paths.reverse();
  if (order === 'shuffled') {
    const next = prng(0x5eed);
    for (let i = paths.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [paths[i], paths[j]] = [paths[j]!, paths[i]!];
    }
  }
  const list = Buffer.from(`${paths.join('\0')}\0`, 'latin1');
  const sortFlag = order === 'sorted' ? ['--sort=name'] : ['--no-recursion', '--null', '-T', '-'];
  const args =
    order === 'sorted'
      ? ['-czf', out, ...sortFlag, '--owner=0', '--group=0', '--numeric-owner', name]
      : ['-czf', out, ...sortFlag, '--owner=0', '--group=0', '--numeric-owner'];
  const r = spawnSync('tar', args, { cwd: parent, input: order === 'sorted' ? undefined : list });
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr.toString()}`);
}

describe.runIf(nixAvailable())('one-pass NAR hash of tarballs = nix hash path of the tree', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'fc-tree-nar-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  for (const shape of SHAPES) {
    it(`${shape.name}: ${shape.description}`, async () => {
      const parent = join(work, shape.name);
      await mkdir(parent);
      const root = await buildTree(shape, parent);
      const expected = await nixHashPath(root);
      const cache = await openCache({ memory: true });
      for (const order of ['sorted', 'reverse', 'shuffled'] as const) {
        const file = join(parent, `${order}.tar.gz`);
        archiveOf(parent, shape.name, order, file);
        const bytes = await readFile(file);
        for (const hold of [undefined, 4096, 0]) {
          const r = await ingestTarball(chunked(bytes, 65_536), cache, { narHoldBytes: hold });
          const sum = r.narSum ?? (await computeNarSum(r.node, cache));
          expect(toSRI(makeHash('sha256', sum.narSha256)), `${order}, hold ${hold}`).toBe(expected);
          // Always in one pass (written ahead, or from the held bytes and the spool once that failed).
          expect(r.narSum, `${order}, hold ${hold}`).toBeDefined();
          expect(r.narSum).toEqual(await computeNarSum(r.node, cache));
        }
      }
      await cache.close();
      expect(spools()).toEqual([]);
    }, 120_000);
  }

  it('a failed guess hashes the files streamed before it from the spool, not from the store', async () => {
    // Reversed, with no window: every file streams, and the first member after one sorts before it.
    const parent = join(work, 'no-read-back');
    await mkdir(parent);
    const root = await buildTree(spanning, parent);
    const file = join(parent, 'reverse.tar.gz');
    archiveOf(parent, spanning.name, 'reverse', file);
    const cache = await openCache({ memory: true });
    const read = vi.spyOn(cache.blobs, 'read');
    const r = await ingestTarball(chunked(await readFile(file), 65_536), cache, { narHoldBytes: 0 });
    expect(read).not.toHaveBeenCalled();
    expect(toSRI(makeHash('sha256', r.narSum!.narSha256))).toBe(await nixHashPath(root));
    await cache.close();
    expect(spools()).toEqual([]);
  }, 60_000);

  it('the spool stays near the window while the guess holds, and keeps everything once it failed', async () => {
    // 512 files of 16 KiB (8 MiB) and a window of 256 KiB: spool files of 1 MiB, each deleted once hashed.
    const parent = join(work, 'spool-size');
    await mkdir(join(parent, 'tree'), { recursive: true });
    for (let i = 0; i < 512; i++) {
      await writeFile(join(parent, 'tree', `f${String(i).padStart(3, '0')}`), prngBytes(i, 16 * 1024));
    }
    const expected = await nixHashPath(join(parent, 'tree'));
    const root = join(parent, 'root');
    const seen = async (order: Order) => {
      const file = join(parent, `${order}.tar.gz`);
      archiveOf(parent, 'tree', order, file);
      let most = 0;
      const names = new Set<string>();
      // Between the archive's chunks: the bytes and the names of the spool files on disk.
      async function* watched(): AsyncGenerator<Uint8Array> {
        for await (const chunk of chunked(await readFile(file), 16 * 1024)) {
          let bytes = 0;
          for (const d of readdirSync(join(root, 'tmp')).filter((n) => n.startsWith('tar-nar-'))) {
            for (const f of readdirSync(join(root, 'tmp', d))) {
              names.add(f);
              bytes += statSync(join(root, 'tmp', d, f)).size;
            }
          }
          most = Math.max(most, bytes);
          yield chunk;
        }
      }
      await mkdir(join(root, 'tmp'), { recursive: true });
      const cache = await openCache({ memory: true });
      const r = await ingestTarball(watched(), cache, { root, narHoldBytes: 256 * 1024 });
      await cache.close();
      expect(toSRI(makeHash('sha256', r.narSum!.narSha256)), order).toBe(expected);
      expect(readdirSync(join(root, 'tmp')), order).toEqual([]);
      return { most, files: names.size };
    };
    const sorted = await seen('sorted');
    const reversed = await seen('reverse');
    expect(sorted.files).toBeGreaterThanOrEqual(8);
    expect(sorted.most).toBeLessThanOrEqual(2 * 1024 * 1024);
    // The source is read ahead of the spool (the decompressor's buffers): not all 8 MiB are seen.
    expect(reversed.most).toBeGreaterThan(5 * 1024 * 1024);
  }, 60_000);

  it('nix-prefetch-url --unpack gives the same hash for a shuffled archive', async () => {
    const parent = join(work, 'prefetch');
    await mkdir(parent);
    await buildTree(hardLinks, parent);
    const file = join(parent, 'shuffled.tar.gz');
    archiveOf(parent, hardLinks.name, 'shuffled', file);
    const store = join(parent, 'store');
    const nix32 = await runNixOk(['--store', store, '--unpack', `file://${file}`], {
      bin: 'nix-prefetch-url' as 'nix',
    });
    const cache = await openCache({ memory: true });
    const r = await ingestTarball(chunked(await readFile(file)), cache, { narHoldBytes: 0 });
    const sum = r.narSum ?? (await computeNarSum(r.node, cache));
    expect(toSRI(makeHash('sha256', sum.narSha256))).toBe(
      await runNixOk(['hash', 'to-sri', '--type', 'sha256', nix32]),
    );
    await cache.close();
  }, 60_000);
});
