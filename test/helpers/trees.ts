/**
 * Deterministic test trees for the real-Nix conformance harness. Each case builds one root (a directory,
 * a regular file or a symlink) at a path that must not exist yet. Contents come from seeded PRNGs and fixed
 * strings only, and every mode is set with chmod after creation, so the NAR hashes are identical on any
 * machine and under any umask; `fixtures/nix-goldens/hash-path.json` (recorded by
 * scripts/record-nix-goldens.mjs) depends on that. Names are chosen to catch the usual NAR mistakes:
 * UTF-16 vs UTF-8 ordering, path-string vs name sorting, case-only differences, control characters.
 */

import { chmod, mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type TreeKind = 'directory' | 'regular' | 'symlink';

export interface TreeCase {
  readonly name: string;
  readonly description: string;
  /** What the root itself is: `hash file` only applies to `regular` roots. */
  readonly kind: TreeKind;
  /** Over 100 MiB; build it once per test file and delete it afterwards. */
  readonly large?: boolean;
  /** Creates the root at `root` (which must not exist; its parent must). */
  build(root: string): Promise<void>;
}

/** mulberry32: a tiny seeded PRNG, good enough for reproducible sizes and bytes. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function prngBytes(seed: number, size: number): Uint8Array {
  const next = prng(seed);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(next() * 256);
  return out;
}

async function file(path: string | Buffer, content: Uint8Array | string, mode = 0o644): Promise<void> {
  await writeFile(path, content);
  await chmod(path, mode);
}

async function dir(path: string | Buffer): Promise<void> {
  await mkdir(path);
  await chmod(path, 0o755);
}

const modes: TreeCase = {
  name: 'modes',
  description: 'only the owner-x bit makes a NAR regular file executable',
  kind: 'directory',
  async build(root) {
    await dir(root);
    const entries: [string, number][] = [
      ['exec-0755', 0o755],
      ['exec-0744', 0o744],
      ['exec-0700', 0o700],
      ['plain-0644', 0o644],
      ['plain-0645-other-x', 0o645],
      ['plain-0654-group-x', 0o654],
      ['plain-0600', 0o600],
      ['plain-0444-readonly', 0o444],
    ];
    for (const [name, mode] of entries) await file(join(root, name), `#!/bin/sh\necho ${name}\n`, mode);
    await file(join(root, 'exec-empty'), '', 0o755);
    await dir(join(root, 'sub'));
    await file(join(root, 'sub', 'nested-exec'), 'x', 0o750);
  },
};

const symlinks: TreeCase = {
  name: 'symlinks',
  description: 'relative, absolute, dangling, directory and chained symlinks; never followed',
  kind: 'directory',
  async build(root) {
    await dir(root);
    await file(join(root, 'target.txt'), 'the target\n');
    await dir(join(root, 'sub'));
    await file(join(root, 'sub', 'inner'), 'inner\n', 0o755);
    await symlink('target.txt', join(root, 'relative'));
    await symlink('../symlinks/target.txt', join(root, 'relative-up'));
    await symlink('/nix/store/00000000000000000000000000000000-absolute', join(root, 'absolute'));
    await symlink('does/not/exist', join(root, 'dangling'));
    await symlink('sub', join(root, 'to-directory'));
    await symlink('relative', join(root, 'chain'));
    await symlink('sub/../target.txt', join(root, 'dotdot'));
    await symlink('with space/\u00e9\u{1F600}', join(root, 'unicode-target'));
    await symlink(`${'long-component/'.repeat(25)}end`, join(root, 'long-target'));
    await symlink('../target.txt', join(root, 'sub', 'up'));
  },
};

const symlinkRoot: TreeCase = {
  name: 'symlink-root',
  description: 'the root itself is a (dangling) symlink',
  kind: 'symlink',
  async build(root) {
    await symlink('some/where/else', root);
  },
};

const fileRoot: TreeCase = {
  name: 'file-root',
  description: 'a single regular file as root (size not a multiple of 8: NAR padding)',
  kind: 'regular',
  async build(root) {
    await file(root, prngBytes(1, 1021));
  },
};

const execFileRoot: TreeCase = {
  name: 'exec-file-root',
  description: 'a single executable file as root',
  kind: 'regular',
  async build(root) {
    await file(root, '#!/bin/sh\nexit 0\n', 0o755);
  },
};

const emptyFileRoot: TreeCase = {
  name: 'empty-file-root',
  description: 'an empty regular file as root',
  kind: 'regular',
  async build(root) {
    await file(root, '');
  },
};

const emptyDirRoot: TreeCase = {
  name: 'empty-dir-root',
  description: 'an empty directory as root',
  kind: 'directory',
  async build(root) {
    await dir(root);
  },
};

const emptySubdirs: TreeCase = {
  name: 'empty-subdirs',
  description: 'empty directories at several depths next to files',
  kind: 'directory',
  async build(root) {
    await dir(root);
    await dir(join(root, 'a'));
    await dir(join(root, 'b'));
    await dir(join(root, 'b', 'c'));
    await dir(join(root, 'b', 'c', 'd'));
    await file(join(root, 'b', 'file'), 'between empty dirs\n');
    await dir(join(root, 'z-only-empty-child'));
    await dir(join(root, 'z-only-empty-child', 'empty'));
    await file(join(root, 'empty-file'), '');
  },
};

const unusualNames: TreeCase = {
  name: 'unusual-names',
  description: 'spaces, dots, control characters, case-only and UTF-16-vs-UTF-8 ordering differences',
  kind: 'directory',
  async build(root) {
    await dir(root);
    const names = [
      'with space',
      ' leading space',
      'trailing space ',
      '.hidden',
      '..double-dot',
      '...',
      '-dash',
      'new\nline',
      'tab\there',
      'UPPER',
      'upper',
      'Upper',
      '\u{1F600}', // astral: UTF-16 D83D.. sorts before U+FF5E, UTF-8 F0.. sorts after EF..
      '\uFF5E',
      '\u{10FFFF}x',
      '\uE000',
      'e\u0301', // combining acute (NFD) next to precomposed é (NFC)
      '\u00e9',
      '\u65e5\u672c\u8a9e',
      'back\\slash',
      'quote"s\'',
      '#%&*?<>|:;=',
      '~',
      '_',
      '0',
      'a',
    ];
    if (new Set(names).size !== names.length) throw new TypeError('unusual-names: duplicate name');
    for (const [i, name] of names.entries()) await file(join(root, name), `entry ${i}: ${name}\n`);
    await dir(join(root, '\u{1F600} dir'));
    await file(join(root, '\u{1F600} dir', '\uFF5E'), 'fullwidth tilde\n');
    await file(join(root, '\u{1F600} dir', '\u{1F601}'), 'grin\n', 0o755);
    await symlink('\u{1F600}', join(root, 'link-to-\u{1F600}'));
  },
};

const nonUtf8Names: TreeCase = {
  name: 'non-utf8-names',
  description: 'names that are not valid UTF-8: NAR names are byte strings',
  kind: 'directory',
  async build(root) {
    await dir(root);
    const rootBytes = Buffer.from(`${root}/`);
    const raw = [
      [0xff, 0x61],
      [0xc3, 0x28],
      [0x80],
      [0xed, 0xa0, 0x80], // an encoded UTF-16 surrogate, invalid in UTF-8
      [0x61, 0xfe],
    ];
    for (const [i, bytes] of raw.entries()) {
      await file(Buffer.concat([rootBytes, Buffer.from(bytes)]), `raw name ${i}\n`);
    }
    await file(join(root, 'a'), 'ascii neighbour\n');
    await file(join(root, '\u00ff'), 'valid U+00FF (C3 BF)\n');
  },
};

const sortOrder: TreeCase = {
  name: 'sort-order',
  description: 'entries sort by name bytes, not by full path ("a" dir before "a-b" although "/" > "-")',
  kind: 'directory',
  async build(root) {
    await dir(root);
    await dir(join(root, 'a'));
    await file(join(root, 'a', 'b'), 'inside a\n');
    await file(join(root, 'a-b'), 'a-b\n');
    await file(join(root, 'a.b'), 'a.b\n');
    await file(join(root, 'a0'), 'a0\n');
    await file(join(root, 'A'), 'capital A\n');
    await dir(join(root, 'b'));
    await dir(join(root, 'b', 'x'));
    await file(join(root, 'b', 'x', 'y'), 'y\n');
    await file(join(root, 'b', 'x.y'), 'x.y\n');
    await file(join(root, 'b', 'x-y'), 'x-y\n');
    await file(join(root, 'b', '10'), '10\n');
    await file(join(root, 'b', '9'), '9\n');
    await file(join(root, 'b', '1'), '1\n');
  },
};

const DEPTH = 50;

const deepNesting: TreeCase = {
  name: 'deep-nesting',
  description: `${DEPTH} nested directories with a file every few levels and a symlink at the bottom`,
  kind: 'directory',
  async build(root) {
    await dir(root);
    let here = root;
    for (let level = 0; level < DEPTH; level++) {
      here = join(here, `d${String(level).padStart(2, '0')}`);
      await dir(here);
      if (level % 7 === 0) await file(join(here, 'level'), `level ${level}\n`, level % 2 ? 0o755 : 0o644);
    }
    await file(join(here, 'bottom'), 'the bottom\n');
    await symlink('../'.repeat(DEPTH), join(here, 'to-root'));
  },
};

const MANY_FILES = 2000;

const manySmallFiles: TreeCase = {
  name: 'many-small-files',
  description: `${MANY_FILES} small files with pseudo-random sizes and bytes in two directory levels`,
  kind: 'directory',
  async build(root) {
    await dir(root);
    const next = prng(0x5eed);
    const dirs = new Set<string>();
    for (let i = 0; i < MANY_FILES; i++) {
      const top = `t${Math.floor(next() * 12)}`;
      const sub = `s${Math.floor(next() * 5)}`;
      const rel = next() < 0.2 ? top : join(top, sub);
      for (const d of rel === top ? [top] : [top, rel]) {
        if (!dirs.has(d)) {
          dirs.add(d);
          await dir(join(root, d));
        }
      }
      // Mostly tiny, sometimes a few KiB, sometimes empty: exercises NAR padding for every residue mod 8.
      const r = next();
      const size = r < 0.05 ? 0 : r < 0.85 ? Math.floor(next() * 200) : Math.floor(next() * 8192);
      const seed = Math.floor(next() * 0x7fffffff);
      const mode = next() < 0.1 ? 0o755 : 0o644;
      await file(join(root, rel, `f${String(i).padStart(4, '0')}`), prngBytes(seed, size), mode);
      if (i % 250 === 0) await symlink(`f${String(i).padStart(4, '0')}`, join(root, rel, `l${i}`));
    }
  },
};

/** 100 MiB + an odd tail, so the size is not a multiple of the block or of 8. */
export const LARGE_FILE_SIZE = 100 * 1024 * 1024 + 12_345;
const BLOCK = 1024 * 1024;

const largeFile: TreeCase = {
  name: 'large-file',
  description: 'a single regular file over 100 MiB, streamed to disk',
  kind: 'regular',
  large: true,
  async build(root) {
    // One seeded 1 MiB block, varied per block by stamping the block index into it, so no two blocks are
    // equal and nothing but one block is ever held in memory.
    const base = prngBytes(0x1a26e, BLOCK);
    const block = new Uint8Array(BLOCK);
    const view = new DataView(block.buffer);
    const fh = await open(root, 'wx');
    try {
      for (let offset = 0, index = 0; offset < LARGE_FILE_SIZE; offset += BLOCK, index++) {
        block.set(base);
        for (let at = 0; at + 4 <= BLOCK; at += 65_536) view.setUint32(at, index ^ at, true);
        const length = Math.min(BLOCK, LARGE_FILE_SIZE - offset);
        await fh.write(block, 0, length);
      }
    } finally {
      await fh.close();
    }
    await chmod(root, 0o644);
  },
};

export const TREE_CASES: readonly TreeCase[] = [
  modes,
  symlinks,
  symlinkRoot,
  fileRoot,
  execFileRoot,
  emptyFileRoot,
  emptyDirRoot,
  emptySubdirs,
  unusualNames,
  nonUtf8Names,
  sortOrder,
  deepNesting,
  manySmallFiles,
  largeFile,
];

/** Builds `treeCase` as `<parent>/<name>` and returns that root path. */
export async function buildTree(treeCase: TreeCase, parent: string): Promise<string> {
  const root = join(parent, treeCase.name);
  await treeCase.build(root);
  return root;
}
