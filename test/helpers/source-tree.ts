/**
 * A deterministic stand-in for "a real source tree of over 10,000 files" (there is no network, and nothing
 * installed on a machine is byte-stable across versions). It mimics a C project checkout: top-level
 * README/LICENSE/Makefile, a `configure` script, `src/<module>/` with sources, headers, internal headers and
 * tests, an `include/` of symlinks into `src/`, docs with a few binary images, executable scripts, a vendored
 * library nested several levels deep, empty files and an empty directory. Text contents are lines of
 * C-like tokens with log-normal sizes (median ≈ 1.3 KiB, a few up to 192 KiB). Everything comes from one
 * seeded PRNG and modes are set with chmod, so `fixtures/nix-goldens/store.json` holds on any machine.
 * It is kept out of `TREE_CASES` so the hash-path goldens and tests stay as they are.
 */

import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { prng, prngBytes, type TreeCase } from './trees.js';

const WORDS = [
  'static',
  'int',
  'void',
  'return',
  'if',
  'else',
  'for',
  'while',
  'struct',
  'const',
  'char',
  'size_t',
  'uint8_t',
  'uint32_t',
  'buffer',
  'length',
  'offset',
  'state',
  'ctx',
  'node',
  'next',
  'prev',
  'count',
  'error',
  'result',
  'value',
  'key',
  'table',
  'entry',
  'index',
  'flags',
  'NULL',
  '0',
  '1',
  '(',
  ')',
  '{',
  '}',
  ';',
  '=',
  '==',
  '!=',
  '->',
  '+',
  '-',
  '*',
  '&&',
  '||',
  'sizeof',
  'memcpy',
  'malloc',
  'free',
  'assert',
  'goto',
  'out',
  'unsigned',
  'long',
  'bool',
  'true',
  'false',
  '/*',
  '*/',
  'TODO:',
  'the',
  'a',
  'is',
  'of',
  'to',
  'in',
  'not',
  'and',
] as const;

const MODULES = 48;
const FILES_PER_MODULE = 180;
const DOCS = 600;
const SCRIPTS = 60;
const VENDOR_FILES = 700;

/** Regular files the tree holds (asserted by the tests, so the generator cannot silently shrink). */
export const SOURCE_TREE_FILES = 5 + MODULES * FILES_PER_MODULE + DOCS + SCRIPTS + VENDOR_FILES + 3;

type Rng = () => number;

/** A log-normal size (Box–Muller), clipped to [0, 192 KiB]. */
function textSize(next: Rng): number {
  const u = Math.max(next(), 1e-12);
  const v = next();
  const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return Math.min(192 * 1024, Math.floor(Math.exp(7.2 + 1.1 * normal)));
}

/** `size` bytes of indented lines of tokens, ending in a newline when it has room. */
function text(next: Rng, size: number): string {
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const indent = '    '.repeat(Math.floor(next() * 4));
    const words: string[] = [];
    const n = 1 + Math.floor(next() * 12);
    for (let i = 0; i < n; i++) words.push(WORDS[Math.floor(next() * WORDS.length)] ?? 'x');
    const line = `${indent}${words.join(' ')}\n`;
    parts.push(line);
    length += line.length;
  }
  const out = parts.join('');
  return size > 0 ? `${out.slice(0, size - 1)}\n` : '';
}

async function file(path: string, content: Uint8Array | string, mode = 0o644): Promise<void> {
  await writeFile(path, content);
  await chmod(path, mode);
}

async function dir(path: string): Promise<void> {
  await mkdir(path);
  await chmod(path, 0o755);
}

function name(next: Rng, prefix: string, i: number): string {
  return `${prefix}${WORDS[Math.floor(next() * 20)]}_${i}`;
}

async function build(root: string): Promise<void> {
  const next = prng(0x50c7ee);
  await dir(root);
  await file(join(root, 'README.md'), text(next, 6000));
  await file(join(root, 'LICENSE'), text(next, 1100));
  await file(join(root, 'Makefile'), text(next, 4000));
  await file(join(root, 'configure'), `#!/bin/sh\n${text(next, 30_000)}`, 0o755);
  await file(join(root, '.gitignore'), '*.o\n*.a\n/build/\n');
  await symlink('LICENSE', join(root, 'COPYING'));

  await dir(join(root, 'src'));
  await dir(join(root, 'include'));
  for (let m = 0; m < MODULES; m++) {
    const mod = `mod${String(m).padStart(2, '0')}_${WORDS[m % WORDS.length]}`.replace(/[^a-z0-9_]/g, 'x');
    const base = join(root, 'src', mod);
    await dir(base);
    await dir(join(base, 'internal'));
    await dir(join(base, 'tests'));
    await dir(join(root, 'include', mod));
    for (let i = 0; i < FILES_PER_MODULE; i++) {
      const r = next();
      const where = r < 0.6 ? base : r < 0.8 ? join(base, 'internal') : join(base, 'tests');
      const ext = next() < 0.7 ? '.c' : '.h';
      const fileName = `${name(next, '', i)}${ext}`;
      await file(join(where, fileName), text(next, textSize(next)), next() < 0.02 ? 0o755 : 0o644);
      if (where === base && ext === '.h' && next() < 0.5) {
        await symlink(`../../src/${mod}/${fileName}`, join(root, 'include', mod, fileName));
      }
    }
  }

  await dir(join(root, 'docs'));
  await dir(join(root, 'docs', 'images'));
  for (let i = 0; i < DOCS; i++) {
    if (i % 25 === 0) {
      const size = 2048 + Math.floor(next() * 150_000);
      await file(
        join(root, 'docs', 'images', `figure-${i}.png`),
        prngBytes(Math.floor(next() * 2 ** 31), size),
      );
    } else {
      await file(join(root, 'docs', `${name(next, 'guide-', i)}.md`), text(next, textSize(next)));
    }
  }

  await dir(join(root, 'scripts'));
  for (let i = 0; i < SCRIPTS; i++) {
    const mode = next() < 0.8 ? 0o755 : 0o644;
    await file(
      join(root, 'scripts', `${name(next, 'do-', i)}.sh`),
      `#!/bin/sh\n${text(next, textSize(next))}`,
      mode,
    );
  }

  let vendor = join(root, 'vendor');
  await dir(vendor);
  for (let depth = 0; depth < 6; depth++) {
    vendor = join(vendor, `lib${depth}`);
    await dir(vendor);
  }
  for (let i = 0; i < VENDOR_FILES; i++) {
    await file(join(vendor, `${name(next, 'v_', i)}.c`), text(next, textSize(next)));
  }

  await dir(join(root, 'tests'));
  await dir(join(root, 'tests', 'empty-dir'));
  await file(join(root, 'tests', '.keep'), '');
  await file(join(root, 'tests', 'empty.txt'), '');
  await file(join(root, 'tests', 'run-all'), '#!/bin/sh\nexec make check\n', 0o755);
  await symlink('../scripts', join(root, 'tests', 'scripts'));
}

export const SOURCE_TREE: TreeCase = {
  name: 'source-tree',
  description: `a generated C-project-like source tree of ${SOURCE_TREE_FILES} regular files, symlinks, nested dirs`,
  kind: 'directory',
  build,
};
