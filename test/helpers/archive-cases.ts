/**
 * The archive fixtures of the tarball tests, as data: each case says how its
 * bytes are made and what it is for. scripts/make-archive-fixtures.mjs writes
 * them to fixtures/archives/ (honest archives, made with GNU tar, zip and the
 * compressor CLIs from a tree with fixed modes and mtimes) and
 * fixtures/bad/archives/ (hostile ones, made byte by byte with
 * test/helpers/archives.ts), with a README table each; the tests read the
 * committed files, so they do not depend on the tool versions on the machine.
 */

import { execFileSync } from 'node:child_process';
import { chmod, link, mkdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { gnuLong, paxHeader, tarArchive, tarMember, zipArchive } from './archives.js';

/** Mtimes in the honest trees: everything old, one file newer (lastModified = max). */
export const OLD_MTIME = 1_600_000_000;
export const NEW_MTIME = 1_650_000_000;

export interface GoodCase {
  readonly file: string;
  readonly description: string;
  /** How many top-level entries the archive has (Nix 2.8's fetchTarball needs exactly one directory). */
  readonly topLevel: 'single-dir' | 'single-file' | 'multiple';
  /** Expected lastModified of modern Nix: the newest member mtime. */
  readonly lastModified: number;
  build(work: string): Promise<Buffer>;
}

export interface BadCase {
  readonly file: string;
  readonly attack: string;
  /** Options the test passes (small caps for bombs). */
  readonly options?: { readonly maxUnpackedBytes?: number; readonly maxEntries?: number };
  build(): Buffer;
}

async function put(path: string, content: string, mode: number, mtime = OLD_MTIME): Promise<void> {
  await writeFile(path, content);
  await chmod(path, mode);
  await utimes(path, mtime, mtime);
}

async function dir(path: string, mtime = OLD_MTIME): Promise<void> {
  await mkdir(path, { recursive: true });
  await chmod(path, 0o755);
  await utimes(path, mtime, mtime);
}

async function lnS(target: string, path: string): Promise<void> {
  await symlink(target, path);
  execFileSync('touch', ['-h', '-d', `@${OLD_MTIME}`, path]);
}

/** pkg-1.0/: modes, symlinks, a hard link, an empty dir, unicode names, one newer file. */
async function buildPkg(root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  await put(join(root, 'README'), 'readme\n', 0o644);
  await mkdir(join(root, 'bin'));
  await put(join(root, 'bin/tool'), '#!/bin/sh\necho tool\n', 0o755);
  await put(join(root, 'bin/x744'), 'owner x\n', 0o744);
  await put(join(root, 'bin/x645'), 'other x only\n', 0o645);
  await put(join(root, 'bin/x654'), 'group x only\n', 0o654);
  await lnS('README', join(root, 'link'));
  await lnS('../../../etc/passwd', join(root, 'dangling'));
  await link(join(root, 'README'), join(root, 'hard'));
  await mkdir(join(root, 'empty'));
  await mkdir(join(root, 'ünïcødé'));
  await put(join(root, 'ünïcødé/文件.txt'), 'unicode\n', 0o644);
  await mkdir(join(root, 'src/deep/er'), { recursive: true });
  await put(join(root, 'src/main.c'), 'int main(void) { return 0; }\n', 0o644, NEW_MTIME);
  await put(join(root, 'src/deep/er/x.h'), '#define X 1\n', 0o644);
  for (const d of ['bin', 'empty', 'ünïcødé', 'src/deep/er', 'src/deep', 'src', '']) await dir(join(root, d));
}

const LONG_DIR = `d${'i'.repeat(118)}r`;
const LONG_FILE = `f${'l'.repeat(196)}e.txt`;

/** long-1.0/: names and link targets over 100 bytes (GNU `L`/`K` records or pax `path`/`linkpath`). */
async function buildLong(root: string): Promise<void> {
  await mkdir(join(root, LONG_DIR), { recursive: true });
  await put(join(root, LONG_DIR, LONG_FILE), 'long\n', 0o755);
  await lnS(`${LONG_DIR}/${LONG_FILE}`, join(root, 'long-symlink'));
  await link(join(root, LONG_DIR, LONG_FILE), join(root, 'hard-to-long'));
  await put(join(root, 'short'), 'short\n', 0o644, NEW_MTIME);
  await dir(join(root, LONG_DIR));
  await dir(root);
}

const TAR = ['--sort=name', '--owner=0', '--group=0', '--numeric-owner'];
const PAX = '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime';

function gnuTar(cwd: string, args: readonly string[]): Buffer {
  return execFileSync('tar', [...TAR, ...args, '-cf', '-'], { cwd, maxBuffer: 1 << 28 });
}

function compress(cmd: string, args: readonly string[], data: Buffer): Buffer {
  return execFileSync(cmd, args, { input: data, maxBuffer: 1 << 28 });
}

async function fresh(work: string, name: string): Promise<string> {
  const d = join(work, name);
  await rm(d, { recursive: true, force: true });
  await mkdir(d);
  return d;
}

async function pkgTar(work: string): Promise<Buffer> {
  const d = await fresh(work, 'pkg');
  await buildPkg(join(d, 'pkg-1.0'));
  return gnuTar(d, ['--format=gnu', 'pkg-1.0']);
}

export const GOOD_CASES: readonly GoodCase[] = [
  {
    file: 'pkg.tar',
    description:
      'GNU tar, one top-level dir: modes 0755/0744 (exec) and 0645/0654 (not), symlinks, a hard link, an empty dir, unicode names',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME,
    build: pkgTar,
  },
  {
    file: 'pkg.tar.gz',
    description: 'pkg.tar through `gzip -9 -n`',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME,
    build: async (w) => compress('gzip', ['-9', '-n', '-c'], await pkgTar(w)),
  },
  {
    file: 'pkg.tar.bz2',
    description: 'pkg.tar through `bzip2 -9`',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME,
    build: async (w) => compress('bzip2', ['-9', '-c'], await pkgTar(w)),
  },
  {
    file: 'pkg.tar.xz',
    description: 'pkg.tar through `xz -6`',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME,
    build: async (w) => compress('xz', ['-6', '-c'], await pkgTar(w)),
  },
  {
    file: 'pkg.tar.zst',
    description: 'pkg.tar through `zstd -19`',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME,
    build: async (w) => compress('zstd', ['-19', '-q', '-c'], await pkgTar(w)),
  },
  {
    file: 'pkg.zip',
    description:
      'the pkg-1.0 tree through `zip -r -y -X` (symlinks stored as links, Unix modes, DOS times; the hard link is a copy)',
    topLevel: 'single-dir',
    lastModified: -1, // DOS times are local time (libarchive and yauzl alike): not asserted
    build: async (w) => {
      const d = await fresh(w, 'pkgzip');
      await buildPkg(join(d, 'pkg-1.0'));
      const out = join(d, 'out.zip');
      execFileSync('zip', ['-q', '-r', '-y', '-X', out, 'pkg-1.0'], {
        cwd: d,
        env: { ...process.env, TZ: 'UTC' },
      });
      return readFile(out);
    },
  },
  {
    file: 'longnames-gnu.tar.gz',
    description:
      'GNU format: a 120-byte dir name, a 203-byte file name, a symlink and a hard link whose targets are over 100 bytes',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME,
    build: async (w) => {
      const d = await fresh(w, 'longgnu');
      await buildLong(join(d, 'long-1.0'));
      return compress('gzip', ['-9', '-n', '-c'], gnuTar(d, ['--format=gnu', 'long-1.0']));
    },
  },
  {
    file: 'longnames-pax.tar.gz',
    description: 'the same tree in pax format (`path`/`linkpath` records)',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME,
    build: async (w) => {
      const d = await fresh(w, 'longpax');
      await buildLong(join(d, 'long-1.0'));
      return compress('gzip', ['-9', '-n', '-c'], gnuTar(d, ['--format=pax', PAX, 'long-1.0']));
    },
  },
  {
    file: 'dot-slash.tar.gz',
    description:
      '`tar -C dir .`: members `./`, `./pkg-1.0/…` (the `./` prefix is dropped; `./` is the root itself)',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME,
    build: async (w) => {
      const d = await fresh(w, 'dotslash');
      await buildPkg(join(d, 'pkg-1.0'));
      await utimes(d, OLD_MTIME, OLD_MTIME);
      return compress('gzip', ['-9', '-n', '-c'], gnuTar(d, ['--format=gnu', '.']));
    },
  },
  {
    file: 'multi.tar.gz',
    description:
      'three top-level entries (files a, b and dir c/): Nix 2.8 fetchTarball refuses it, modern Nix roots at the archive',
    topLevel: 'multiple',
    lastModified: NEW_MTIME,
    build: async (w) => {
      const d = await fresh(w, 'multi');
      await put(join(d, 'a'), 'a\n', 0o644);
      await put(join(d, 'b'), 'b\n', 0o755, NEW_MTIME);
      await mkdir(join(d, 'c'));
      await put(join(d, 'c/d'), 'd\n', 0o644);
      await dir(join(d, 'c'));
      return compress('gzip', ['-9', '-n', '-c'], gnuTar(d, ['--format=gnu', 'a', 'b', 'c']));
    },
  },
  {
    file: 'onefile.tar.gz',
    description:
      'one top-level regular file only.txt (0755): Nix 2.8 makes the file the root, modern Nix a directory holding it',
    topLevel: 'single-file',
    lastModified: OLD_MTIME,
    build: async (w) => {
      const d = await fresh(w, 'onefile');
      await put(join(d, 'only.txt'), 'only\n', 0o755);
      return compress('gzip', ['-9', '-n', '-c'], gnuTar(d, ['--format=gnu', 'only.txt']));
    },
  },
  {
    file: 'implied-parents.tar',
    description: 'file members only, no directory members: top/a/b/c.txt, top/d.txt (parents are implied)',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME,
    build: async () =>
      tarArchive([
        tarMember({ name: 'top/a/b/c.txt', content: 'c\n', mode: 0o644 }),
        tarMember({ name: 'top/d.txt', content: 'd\n', mode: 0o755, mtime: NEW_MTIME }),
      ]),
  },
  {
    file: 'duplicates.tar',
    description: '`tar r` style append: top/x twice (the later one wins), top/y a dir listed twice (merged)',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME,
    build: async () =>
      tarArchive([
        tarMember({ name: 'top/', type: '5', mode: 0o755 }),
        tarMember({ name: 'top/x', content: 'old\n', mode: 0o755 }),
        tarMember({ name: 'top/y/', type: '5', mode: 0o755 }),
        tarMember({ name: 'top/y/1', content: '1\n' }),
        tarMember({ name: 'top/x', content: 'new\n', mode: 0o644, mtime: NEW_MTIME }),
        tarMember({ name: 'top/y/', type: '5', mode: 0o755 }),
        tarMember({ name: 'top/y/2', content: '2\n' }),
      ]),
  },
  {
    file: 'pax-global.tar',
    description:
      'a `git archive`-style pax global header (comment = commit id) before the members; pax mtime overrides the header field',
    topLevel: 'single-dir',
    lastModified: NEW_MTIME + 1,
    build: async () =>
      tarArchive([
        paxHeader({ comment: 'd6cd1e2bd19e03a81132a23b2025920577f84e37' }, true),
        tarMember({ name: 'repo-main/', type: '5', mode: 0o775 }),
        paxHeader({ mtime: `${NEW_MTIME + 1}.75` }),
        tarMember({ name: 'repo-main/file', content: 'x\n', mode: 0o664 }),
      ]),
  },
];

const CAP = 16 * 1024 * 1024;
const zeros = (n: number): Buffer => Buffer.alloc(n);

function flip(data: Buffer, at: number): Buffer {
  const out = Buffer.from(data);
  out[at]! ^= 0xff;
  return out;
}

const small = (name: string, content = 'x\n') => tarMember({ name, content });
const plain = tarArchive([
  tarMember({ name: 'pkg/', type: '5', mode: 0o755 }),
  small('pkg/file', 'y'.repeat(5000)),
]);

export const BAD_CASES: readonly BadCase[] = [
  {
    file: 'dotdot.tar',
    attack: '`../escape.txt`: a member above the root',
    build: () => tarArchive([small('../escape.txt')]),
  },
  {
    file: 'dotdot-middle.tar',
    attack: '`pkg/../../escape.txt`: `..` inside a path',
    build: () => tarArchive([small('pkg/../../escape.txt')]),
  },
  {
    file: 'absolute.tar',
    attack: '`/etc/passwd`: an absolute member path',
    build: () => tarArchive([small('/etc/passwd')]),
  },
  {
    file: 'gnu-longname-dotdot.tar',
    attack: 'a GNU `L` long name `../` + 150 bytes: long names get the same checks',
    build: () =>
      tarArchive([
        gnuLong('L', `../${'x'.repeat(150)}`),
        tarMember({ name: 'short', content: 'x', magic: 'gnu' }),
      ]),
  },
  {
    file: 'pax-path-dotdot.tar',
    attack: 'a pax `path=../../x` overriding an innocent header name',
    build: () => tarArchive([paxHeader({ path: '../../x' }), small('innocent')]),
  },
  {
    file: 'symlink-escape-write.tar',
    attack: '`pkg/a -> /etc`, then `pkg/a/passwd`: writing through a symlink',
    build: () =>
      tarArchive([
        tarMember({ name: 'pkg/a', type: '2', linkname: '/etc' }),
        small('pkg/a/passwd', 'root::0:0::/:/bin/sh\n'),
      ]),
  },
  {
    file: 'symlink-dotdot-through.tar',
    attack: '`pkg/up -> ..`, then `pkg/up/up/pwned`: climbing out through a symlink',
    build: () =>
      tarArchive([tarMember({ name: 'pkg/up', type: '2', linkname: '..' }), small('pkg/up/up/pwned')]),
  },
  {
    file: 'symlink-then-dir.tar',
    attack: '`pkg/a -> /tmp`, then a directory member `pkg/a/`: a directory over a symlink',
    build: () =>
      tarArchive([
        tarMember({ name: 'pkg/a', type: '2', linkname: '/tmp' }),
        tarMember({ name: 'pkg/a/', type: '5' }),
      ]),
  },
  {
    file: 'symlink-empty-target.tar',
    attack: 'a symlink with an empty target (invalid in castore)',
    build: () => tarArchive([tarMember({ name: 'pkg/l', type: '2', linkname: '' })]),
  },
  {
    file: 'hardlink-missing.tar',
    attack: 'a hard link to a member that does not exist',
    build: () =>
      tarArchive([small('pkg/a'), tarMember({ name: 'pkg/h', type: '1', linkname: 'pkg/nothing' })]),
  },
  {
    file: 'hardlink-forward.tar',
    attack: 'a hard link to a member that only comes later',
    build: () => tarArchive([tarMember({ name: 'pkg/h', type: '1', linkname: 'pkg/a' }), small('pkg/a')]),
  },
  {
    file: 'hardlink-escape.tar',
    attack: 'a hard link to `../../etc/passwd`: reading a host file',
    build: () =>
      tarArchive([small('pkg/a'), tarMember({ name: 'pkg/h', type: '1', linkname: '../../etc/passwd' })]),
  },
  {
    file: 'hardlink-absolute.tar',
    attack: 'a hard link to `/etc/shadow`',
    build: () =>
      tarArchive([small('pkg/a'), tarMember({ name: 'pkg/h', type: '1', linkname: '/etc/shadow' })]),
  },
  {
    file: 'hardlink-to-symlink.tar',
    attack: 'a hard link to a symlink `pkg/l -> /etc/shadow` (refused; Nix would copy the link)',
    build: () =>
      tarArchive([
        tarMember({ name: 'pkg/l', type: '2', linkname: '/etc/shadow' }),
        tarMember({ name: 'pkg/h', type: '1', linkname: 'pkg/l' }),
      ]),
  },
  {
    file: 'hardlink-to-dir.tar',
    attack: 'a hard link to a directory (a cycle on disk)',
    build: () =>
      tarArchive([
        tarMember({ name: 'pkg/', type: '5' }),
        tarMember({ name: 'pkg/loop', type: '1', linkname: 'pkg' }),
      ]),
  },
  {
    file: 'hardlink-through-symlink.tar',
    attack: 'a hard link whose target path goes through a symlink `pkg/e -> /etc`',
    build: () =>
      tarArchive([
        tarMember({ name: 'pkg/e', type: '2', linkname: '/etc' }),
        tarMember({ name: 'pkg/h', type: '1', linkname: 'pkg/e/passwd' }),
      ]),
  },
  {
    file: 'chardev.tar',
    attack: 'a character device (`/dev/mem`-like)',
    build: () => tarArchive([tarMember({ name: 'pkg/mem', type: '3' })]),
  },
  {
    file: 'blockdev.tar',
    attack: 'a block device (`/dev/sda`-like)',
    build: () => tarArchive([tarMember({ name: 'pkg/sda', type: '4' })]),
  },
  {
    file: 'fifo.tar',
    attack: 'a FIFO (blocks a reader forever)',
    build: () => tarArchive([tarMember({ name: 'pkg/fifo', type: '6' })]),
  },
  {
    file: 'sparse.tar',
    attack: 'a GNU sparse member: its data is not the file content',
    build: () => tarArchive([tarMember({ name: 'pkg/sparse', type: 'S', content: 'abc', magic: 'gnu' })]),
  },
  {
    file: 'unknown-type.tar',
    attack: 'an unknown type flag `V`',
    build: () => tarArchive([tarMember({ name: 'pkg/v', type: 'V' })]),
  },
  {
    file: 'dir-over-file.tar',
    attack: '`pkg/x` a file, then `pkg/x/` a directory: a directory over a file',
    build: () => tarArchive([small('pkg/x'), tarMember({ name: 'pkg/x/', type: '5' })]),
  },
  {
    file: 'file-through-file.tar',
    attack: '`pkg/x` a file, then `pkg/x/y`: a member under a regular file',
    build: () => tarArchive([small('pkg/x'), small('pkg/x/y')]),
  },
  {
    file: 'file-as-root.tar',
    attack: 'a regular file member named `./` (the root itself)',
    build: () => tarArchive([tarMember({ name: './', type: '0', content: 'x' })]),
  },
  {
    file: 'name-256.tar',
    attack: 'a 256-byte path component (pax `path`): longer than any file system allows',
    build: () => tarArchive([paxHeader({ path: `pkg/${'n'.repeat(256)}` }), small('short')]),
  },
  {
    file: 'name-nul.tar',
    attack: 'a pax `path` with a NUL byte inside a component',
    build: () => tarArchive([paxHeader({ path: 'pkg/a\0b' }), small('short')]),
  },
  {
    file: 'truncated.tar',
    attack: 'cut in the middle of a member’s data',
    build: () => plain.subarray(0, 512 + 512 + 1000),
  },
  {
    file: 'truncated-header.tar',
    attack: 'cut in the middle of a header',
    build: () => plain.subarray(0, 512 + 300),
  },
  {
    file: 'bad-checksum.tar',
    attack: 'a header whose checksum does not match',
    build: () => tarArchive([tarMember({ name: 'pkg/a', content: 'x', badChecksum: true })]),
  },
  {
    file: 'pax-size-lie.tar',
    attack: 'a pax `size` far larger than the data that follows',
    build: () => tarArchive([paxHeader({ size: '1000000' }), small('pkg/a', 'short')]),
  },
  {
    file: 'not-an-archive.bin',
    attack: 'plain text, not an archive at all',
    build: () => Buffer.from('<html>404 Not Found</html>\n'.repeat(40)),
  },
  { file: 'empty.bin', attack: 'zero bytes (a broken download)', build: () => Buffer.alloc(0) },
  {
    file: 'truncated.tar.gz',
    attack: 'a gzip stream cut short',
    build: () => gzipSync(plain).subarray(0, 60),
  },
  {
    file: 'bad-crc.tar.gz',
    attack: 'a gzip stream whose CRC-32 trailer is wrong',
    build: () => {
      const gz = gzipSync(plain);
      return flip(gz, gz.length - 6);
    },
  },
  {
    file: 'corrupt-deflate.tar.gz',
    attack: 'garbage in the middle of the deflate data',
    build: () => flip(flip(gzipSync(plain), 20), 21),
  },
  {
    file: 'gzip-bomb.tar.gz',
    attack: `a 64 MiB member in ~64 KiB of gzip; the test caps unpacking at ${CAP} bytes`,
    options: { maxUnpackedBytes: CAP },
    build: () =>
      gzipSync(tarArchive([tarMember({ name: 'bomb/zeros', content: zeros(64 * 1024 * 1024) })]), {
        level: 9,
      }),
  },
  {
    file: 'too-many-entries.tar.gz',
    attack: '5,000 members; the test caps entries at 1,000',
    options: { maxEntries: 1000 },
    build: () => gzipSync(tarArchive(Array.from({ length: 5000 }, (_, i) => small(`many/f${i}`, '')))),
  },
  {
    file: 'implied-dirs-bomb.tar',
    attack: 'one member 2,000 directories deep; the test caps entries at 1,000 (implied parents count)',
    options: { maxEntries: 1000 },
    build: () => tarArchive([paxHeader({ path: `${'d/'.repeat(2000)}f` }), small('short')]),
  },
  {
    file: 'truncated.tar.xz',
    attack: 'an xz stream cut short',
    build: () => compressXz(plain).subarray(0, 80),
  },
  { file: 'corrupt.tar.bz2', attack: 'garbage inside bzip2 data', build: () => flip(compressBz2(plain), 30) },
  {
    file: 'zip-dotdot.zip',
    attack: 'a zip member `../escape.txt`',
    build: () => zipArchive([{ name: '../escape.txt', content: 'x' }]),
  },
  {
    file: 'zip-absolute.zip',
    attack: 'a zip member `/etc/passwd`',
    build: () => zipArchive([{ name: '/etc/passwd', content: 'x' }]),
  },
  {
    file: 'zip-symlink-escape.zip',
    attack: 'a zip symlink `pkg/a -> /etc`, then `pkg/a/passwd`',
    build: () =>
      zipArchive([
        { name: 'pkg/a', mode: 0o120777, content: '/etc' },
        { name: 'pkg/a/passwd', content: 'x' },
      ]),
  },
  {
    file: 'zip-chardev.zip',
    attack: 'a zip member whose Unix mode is a character device',
    build: () => zipArchive([{ name: 'pkg/mem', mode: 0o020644 }]),
  },
  {
    file: 'zip-bomb.zip',
    attack: `a 64 MiB deflated member in ~64 KiB; the test caps unpacking at ${CAP} bytes`,
    options: { maxUnpackedBytes: CAP },
    build: () => zipArchive([{ name: 'bomb/zeros', content: zeros(64 * 1024 * 1024), deflate: true }]),
  },
  {
    file: 'zip-size-lie.zip',
    attack: 'a deflated member that inflates to far more than its declared size',
    build: () =>
      zipArchive([{ name: 'pkg/a', content: zeros(1024 * 1024), deflate: true, declaredSize: 10 }]),
  },
  {
    file: 'zip-bad-crc.zip',
    attack: 'a zip member whose CRC-32 is wrong',
    build: () => zipArchive([{ name: 'pkg/a', content: 'hello', crc: 0x12345678 }]),
  },
  {
    file: 'zip-truncated.zip',
    attack: 'a zip with its central directory cut off',
    build: () => {
      const z = zipArchive([{ name: 'pkg/a', content: 'hello world' }]);
      return z.subarray(0, z.length - 30);
    },
  },
];

function compressXz(data: Buffer): Buffer {
  return execFileSync('xz', ['-6', '-c'], { input: data });
}

function compressBz2(data: Buffer): Buffer {
  return execFileSync('bzip2', ['-9', '-c'], { input: data });
}
