/**
 * The native NAR dump (src/native/nar-dump.cc through src/native/nar-dump.ts) against the JavaScript walk
 * (`dumpPathJs`), which the real-Nix tests of test/cli/hash.test.ts pin to `nix hash path`: the same bytes
 * on every generated tree case (the >100 MiB file, non-UTF-8 names and a directory deeper than the
 * addon keeps descriptors for included), the same NAR sizes, and the same error codes and messages.
 * Without the addon (not built, or FETCH_CACHE_NO_NATIVE=1) the comparison is skipped and says so in
 * its title; test/native/loader.test.ts checks that a built addon loads.
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFetchCacheError } from '../../src/errors.js';
import { dumpPath, dumpPathJs } from '../../src/fs/dump.js';
import { type NarDump, narDump } from '../../src/native/index.js';
import { nativeDumpPath } from '../../src/native/nar-dump.js';
import { withAddon } from '../helpers/native.js';
import { buildTree, TREE_CASES } from '../helpers/trees.js';

const native = narDump();

interface Dumped {
  sha256: string;
  size: number;
  chunks: number;
  /** The whole NAR when it is small enough to compare byte by byte. */
  bytes?: Buffer;
}

async function dumpWith(
  dump: (path: string, sink: (c: Uint8Array) => void) => Promise<number>,
  path: string,
): Promise<Dumped> {
  const h = createHash('sha256');
  const parts: Buffer[] = [];
  let total = 0;
  let chunks = 0;
  const size = await dump(path, (c) => {
    h.update(c);
    total += c.byteLength;
    chunks++;
    if (total <= 8 << 20) parts.push(Buffer.from(c));
  });
  expect(size).toBe(total);
  return {
    sha256: h.digest('hex'),
    size,
    chunks,
    ...(total <= 8 << 20 ? { bytes: Buffer.concat(parts) } : {}),
  };
}

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (!isFetchCacheError(e)) throw e;
    return { code: e.code, message: e.message };
  }
  throw new Error('expected a failure');
}

let work: string;
const roots = new Map<string, string>();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'fc-dump-'));
  for (const treeCase of TREE_CASES) roots.set(treeCase.name, await buildTree(treeCase, work));
  // Deeper than the 128 directories the addon keeps open: the rest are read by path.
  let deep = join(work, 'very-deep');
  roots.set('very-deep', deep);
  for (let i = 0; i < 150; i++) {
    await mkdir(deep);
    await writeFile(join(deep, `f${i}`), `level ${i}\n`);
    if (i % 10 === 0) await symlink(`f${i}`, join(deep, `l${i}`));
    deep = join(deep, `d${i % 3}`);
  }
}, 120_000);

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe.runIf(native !== undefined)(withAddon('native NAR dump equals the JavaScript walk', native), () => {
  const cases = [...TREE_CASES.map((c) => c.name), 'very-deep'];
  it.each(cases)(
    '%s',
    async (name) => {
      const root = roots.get(name)!;
      const js = await dumpWith(dumpPathJs, root);
      const nat = await dumpWith(dumpPath, root);
      expect(nat.size).toBe(js.size);
      expect(nat.sha256).toBe(js.sha256);
      if (js.bytes !== undefined) expect(nat.bytes!.equals(js.bytes)).toBe(true);
      // The native walk hands over whole buffers, not one chunk per token.
      if (js.size > 4 << 20) expect(nat.chunks).toBeLessThan(js.size / 65_536);
    },
    120_000,
  );

  it('a tiny sink buffer size still gives every byte in order (tokens split across fills)', async () => {
    const root = roots.get('unusual-names')!;
    const js = await dumpWith(dumpPathJs, root);
    const bytes: number[] = [];
    const n = native!;
    const tiny: NarDump = { open: n.open, close: n.close, fill: (h, b) => n.fill(h, b.subarray(0, 7)) };
    await nativeDumpPath(tiny, root, (c) => bytes.push(...c), {
      io: () => new Error('io') as never,
      unsupported: () => new Error('unsupported') as never,
      changed: () => new Error('changed') as never,
    });
    expect(Buffer.from(bytes).equals(js.bytes!)).toBe(true);
  });

  it('errors: missing path, FIFO root and FIFO inside a tree, as the JavaScript walk reports them', async () => {
    const missing = join(work, 'does-not-exist');
    const inTree = join(work, 'with-fifo');
    await mkdir(inTree);
    await writeFile(join(inTree, 'a'), 'x');
    execFileSync('mkfifo', [join(inTree, 'pipe')]);
    const missingInside = join(work, 'dangling-dir');
    await mkdir(missingInside);
    for (const path of [missing, join(inTree, 'pipe'), inTree]) {
      const js = await errorOf(dumpPathJs(path, () => {}));
      const nat = await errorOf(dumpPath(path, () => {}));
      expect(nat).toEqual(js);
    }
    expect((await errorOf(dumpPath(missing, () => {}))).code).toBe('ERR_NOT_FOUND');
    expect((await errorOf(dumpPath(inTree, () => {}))).code).toBe('ERR_UNSUPPORTED_FILE_TYPE');
  });

  it('with several bad subtrees dumped at once, the error reported is the first in NAR order', async () => {
    const tree = join(work, 'two-fifos');
    for (const sub of ['a', 'b', 'c']) {
      await mkdir(join(tree, sub), { recursive: true });
      await writeFile(join(tree, sub, 'file'), sub);
    }
    execFileSync('mkfifo', [join(tree, 'b', 'pipe')]);
    execFileSync('mkfifo', [join(tree, 'c', 'pipe')]);
    for (let i = 0; i < 5; i++) {
      const nat = await errorOf(dumpPath(tree, () => {}));
      expect(nat).toEqual(await errorOf(dumpPathJs(tree, () => {})));
      expect(nat.message).toContain(join(tree, 'b', 'pipe'));
    }
  });

  it('a sink that throws stops the dump and the error reaches the caller', async () => {
    const root = roots.get('many-small-files')!;
    let calls = 0;
    await expect(
      dumpPath(root, () => {
        calls++;
        throw new Error('sink full');
      }),
    ).rejects.toThrow('sink full');
    expect(calls).toBe(1);
  });
});
