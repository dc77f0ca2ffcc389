/**
 * ingestTarball() against real Nix: every honest archive in fixtures/archives/ must give the NAR hash and
 * store path recorded from Nix in fixtures/nix-goldens/fetch-tarball.json (and, when `nix` is installed,
 * the same answers live). Then the member semantics one by one, and the places where we follow modern
 * Nix (>= 2.21) rather than the reference Nix 2.8: root selection and lastModified.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import type { Node } from '../../src/castore/nodes.js';
import { FetchCacheError } from '../../src/errors.js';
import { ingestTarball, type TarballOptions } from '../../src/fetchers/tarball.js';
import { computeNarSum } from '../../src/nar-render/nar-calc.js';
import { makeHash, toSRI } from '../../src/nix/hash.js';
import { sha256 } from '../../src/nix/hashing.js';
import { formatStorePath, makeFixedOutputPath } from '../../src/nix/store-path.js';
import { GOOD_CASES, NEW_MTIME, OLD_MTIME } from '../helpers/archive-cases.js';
import { chunked, tarArchive, tarMember, zipArchive } from '../helpers/archives.js';
import { nixAvailable, runNix, runNixOk } from '../helpers/nix.js';

interface Golden {
  archiveSha256: string;
  topLevel: string;
  nix28FetchTarball: { storePath: string; narHash: string } | { error: string };
  nix28PrefetchUnpack: string;
  modern: { narHash: string; how: string };
}
const goldens = JSON.parse(
  readFileSync(new URL('../../fixtures/nix-goldens/fetch-tarball.json', import.meta.url), 'utf8'),
) as { cases: Record<string, Golden> };
const vectors = JSON.parse(
  readFileSync(new URL('../../fixtures/tarball-vectors.json', import.meta.url), 'utf8'),
) as {
  tarballExperiments: { cases: { tarball: string; nix28: string; modernExpected: string }[] };
};

const archiveUrl = (file: string) => new URL(`../../fixtures/archives/${file}`, import.meta.url);
const archive = (file: string) => readFileSync(archiveUrl(file));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * Ingest into a new memory store. The NAR hash is the one computed while the members streamed in
 * (tree-nar.ts), which must be the NAR rendered from the stored tree; and so must the one computed when
 * nothing may be held (every file hashed as it passes, in archive order, or the render when that fails).
 */
async function ingest(bytes: Uint8Array, opts: TarballOptions = {}, chunk = 4096) {
  const cache = await openCache({ memory: true });
  const r = await ingestTarball(chunked(bytes, chunk), cache, opts);
  const rendered = await computeNarSum(r.node, cache);
  if (r.narSum !== undefined) expect(r.narSum).toEqual(rendered);
  const unheld = await ingestTarball(chunked(bytes, chunk), cache, { ...opts, narHoldBytes: 0 });
  if (unheld.narSum !== undefined) expect(unheld.narSum).toEqual(rendered);
  const sum = r.narSum ?? rendered;
  const hash = makeHash('sha256', sum.narSha256);
  const storePath = formatStorePath(makeFixedOutputPath({ name: 'source', method: 'nar', hash }));
  return {
    cache,
    node: r.node,
    lastModified: r.lastModified,
    narHash: toSRI(hash),
    storePath,
    onePass: r.narSum !== undefined,
  };
}

type Listed =
  | { type: 'directory' }
  | { type: 'file'; executable: boolean; digest: string; size: number }
  | { type: 'symlink'; target: string };

/** path → what is there, for asserting on individual members. Names are shown as UTF-8 (or latin1 if not). */
async function listTree(cache: Cache, node: Node, prefix = '', out = new Map<string, Listed>()) {
  if (node.type === 'symlink')
    out.set(prefix, { type: 'symlink', target: Buffer.from(node.target).toString('utf8') });
  else if (node.type === 'file') {
    out.set(prefix, { type: 'file', executable: node.executable, digest: hex(node.digest), size: node.size });
  } else {
    out.set(prefix, { type: 'directory' });
    const dir = await cache.directories.get(node.digest);
    if (dir === undefined) throw new Error(`missing directory ${prefix}`);
    for (const { name, node: child } of dir) {
      await listTree(
        cache,
        child,
        prefix === ''
          ? Buffer.from(name).toString('utf8')
          : `${prefix}/${Buffer.from(name).toString('utf8')}`,
        out,
      );
    }
  }
  return out;
}

describe('honest archives give the NAR hash and store path Nix gives (recorded goldens)', () => {
  it('has a golden for every fixture archive, tied to its exact bytes', () => {
    const files = readdirSync(fileURLToPath(new URL('../../fixtures/archives/', import.meta.url))).filter(
      (f) => f !== 'README.md',
    );
    expect(files.sort()).toEqual(GOOD_CASES.map((c) => c.file).sort());
    for (const c of GOOD_CASES)
      expect(hex(sha256(archive(c.file))), c.file).toBe(goldens.cases[c.file]!.archiveSha256);
  });

  for (const c of GOOD_CASES) {
    it(`${c.file}: ${c.description}`, async () => {
      const golden = goldens.cases[c.file]!;
      const r = await ingest(archive(c.file));
      expect(r.narHash).toBe(golden.modern.narHash);
      // A tar is hashed in one pass; a zip's NAR is rendered from the store.
      expect(r.onePass).toBe(!c.file.endsWith('.zip'));
      if (c.topLevel === 'single-dir' && 'storePath' in golden.nix28FetchTarball) {
        // Where Nix 2.8 and modern Nix agree, the store path is Nix 2.8's own answer.
        expect(r.storePath).toBe(golden.nix28FetchTarball.storePath);
      }
      if (c.lastModified >= 0) expect(r.lastModified).toBe(c.lastModified);
    });
  }

  it('the same tree comes out of tar, tar.gz, tar.bz2, tar.xz, tar.zst and zip', async () => {
    const roots = new Set<string>();
    for (const f of [
      'pkg.tar',
      'pkg.tar.gz',
      'pkg.tar.bz2',
      'pkg.tar.xz',
      'pkg.tar.zst',
      'pkg.zip',
      'dot-slash.tar.gz',
    ]) {
      const r = await ingest(archive(f));
      roots.add(r.node.type === 'directory' ? hex(r.node.digest) : 'not a directory');
    }
    expect(roots.size).toBe(1);
  });

  it('does not depend on how the download is chunked (7-byte and 1 MiB chunks)', async () => {
    const a = await ingest(archive('pkg.tar.gz'), {}, 7);
    const b = await ingest(archive('longnames-pax.tar.gz'), {}, 7);
    expect(a.narHash).toBe(goldens.cases['pkg.tar.gz']!.modern.narHash);
    expect(b.narHash).toBe(goldens.cases['longnames-pax.tar.gz']!.modern.narHash);
    expect((await ingest(archive('pkg.zip'), {}, 1 << 20)).narHash).toBe(
      goldens.cases['pkg.zip']!.modern.narHash,
    );
  });
});

describe.runIf(nixAvailable())('live: the same answers from the Nix on this machine', () => {
  const fetchTarball = async (file: string) => {
    const store = await mkdtemp(join(tmpdir(), 'fc-tarball-live-'));
    try {
      const url = `file://${fileURLToPath(archiveUrl(file))}`;
      const r = await runNix([
        'eval',
        '--impure',
        '--raw',
        '--store',
        store,
        '--expr',
        `builtins.fetchTarball "${url}"`,
      ]);
      // runNix's type lists the nix binaries other tests use; it spawns whichever name it is given.
      const prefetch = await runNixOk(['--store', store, '--unpack', url], {
        bin: 'nix-prefetch-url' as 'nix',
      });
      return { fetchTarball: r.code === 0 ? r.stdout.trim() : undefined, error: r.stderr, prefetch };
    } finally {
      await rm(store, { recursive: true, force: true });
    }
  };
  const toSri = (nix32: string) => runNixOk(['hash', 'to-sri', '--type', 'sha256', nix32]);

  for (const file of [
    'pkg.tar.zst',
    'pkg.zip',
    'longnames-gnu.tar.gz',
    'duplicates.tar',
    'implied-parents.tar',
  ]) {
    it(`${file}: builtins.fetchTarball and nix-prefetch-url --unpack agree with us`, async () => {
      const [live, ours] = await Promise.all([fetchTarball(file), ingest(archive(file))]);
      expect(ours.storePath).toBe(live.fetchTarball);
      expect(ours.narHash).toBe(await toSri(live.prefetch));
    });
  }

  it('multi.tar.gz: Nix 2.8 fetchTarball refuses it; its unpack directory is our (modern) root', async () => {
    const [live, ours] = await Promise.all([fetchTarball('multi.tar.gz'), ingest(archive('multi.tar.gz'))]);
    expect(live.fetchTarball).toBeUndefined();
    expect(live.error).toContain('unexpected number of top-level files');
    expect(ours.narHash).toBe(await toSri(live.prefetch));
  });
});

describe('member semantics', () => {
  it('executable iff owner-x; symlinks kept as they are; hard links become copies; empty dirs and unicode names kept', async () => {
    const { cache, node } = await ingest(archive('pkg.tar'));
    const t = await listTree(cache, node);
    const file = (p: string) => t.get(p) as Extract<Listed, { type: 'file' }>;
    expect(file('bin/tool').executable).toBe(true); // 0755
    expect(file('bin/x744').executable).toBe(true); // 0744
    expect(file('bin/x645').executable).toBe(false); // 0645: other-x only
    expect(file('bin/x654').executable).toBe(false); // 0654: group-x only
    expect(file('README').executable).toBe(false);
    expect(t.get('link')).toEqual({ type: 'symlink', target: 'README' });
    // Never followed or checked: a target pointing outside the tree is just bytes.
    expect(t.get('dangling')).toEqual({ type: 'symlink', target: '../../../etc/passwd' });
    expect(t.get('hard')).toEqual(file('README'));
    expect(t.get('empty')).toEqual({ type: 'directory' });
    expect(file('ünïcødé/文件.txt').size).toBe('unicode\n'.length);
    expect(t.get('')).toEqual({ type: 'directory' });
  });

  it('GNU long names/links and pax path/linkpath give the same tree', async () => {
    const gnu = await ingest(archive('longnames-gnu.tar.gz'));
    const pax = await ingest(archive('longnames-pax.tar.gz'));
    expect(gnu.node).toEqual(pax.node);
    const t = await listTree(gnu.cache, gnu.node);
    const long = `d${'i'.repeat(118)}r/f${'l'.repeat(196)}e.txt`;
    expect(t.get(long)).toMatchObject({ type: 'file', executable: true });
    expect(t.get('long-symlink')).toEqual({ type: 'symlink', target: long });
    expect(t.get('hard-to-long')).toEqual(t.get(long));
  });

  it('implies missing parent directories', async () => {
    const { cache, node } = await ingest(archive('implied-parents.tar'));
    const t = await listTree(cache, node);
    expect([...t.keys()].sort()).toEqual(['', 'a', 'a/b', 'a/b/c.txt', 'd.txt']);
  });

  it('duplicates: a later file replaces an earlier one, a repeated directory merges', async () => {
    const { cache, node } = await ingest(archive('duplicates.tar'));
    const t = await listTree(cache, node);
    expect(t.get('x')).toMatchObject({ type: 'file', executable: false, size: 4 }); // "new\n", 0644
    expect([...t.keys()].filter((k) => k.startsWith('y/')).sort()).toEqual(['y/1', 'y/2']);
  });

  it('duplicates: a file or symlink replaces a directory with children (they are dropped), as modern Nix does', async () => {
    const bytes = tarArchive([
      tarMember({ name: 'top/d/', type: '5' }),
      tarMember({ name: 'top/d/child', content: 'c' }),
      tarMember({ name: 'top/d', content: 'now a file' }),
      tarMember({ name: 'top/e/f', content: 'f' }),
      tarMember({ name: 'top/e', type: '2', linkname: 'd' }),
      tarMember({ name: 'top/g', content: 'g' }),
      tarMember({ name: 'top/g', type: '2', linkname: 'e' }),
    ]);
    const { cache, node } = await ingest(bytes);
    const t = await listTree(cache, node);
    expect([...t.keys()].sort()).toEqual(['', 'd', 'e', 'g']);
    expect(t.get('d')).toMatchObject({ type: 'file', size: 10 });
    expect(t.get('e')).toEqual({ type: 'symlink', target: 'd' });
    expect(t.get('g')).toEqual({ type: 'symlink', target: 'e' });
  });

  it('a hard link copies its target as it stands at that point (after a replacement)', async () => {
    const bytes = tarArchive([
      tarMember({ name: 'top/a', content: 'first', mode: 0o644 }),
      tarMember({ name: 'top/a', content: 'second', mode: 0o755 }),
      tarMember({ name: 'top/h', type: '1', linkname: './top/a', mode: 0o644 }),
    ]);
    const { cache, node } = await ingest(bytes);
    const t = await listTree(cache, node);
    expect(t.get('h')).toEqual(t.get('a'));
    expect(t.get('h')).toMatchObject({ executable: true, size: 6 }); // the target's mode, not the link's
  });

  it('normalises `./a`, `a//b` and trailing slashes; keeps non-UTF-8 name bytes', async () => {
    const bytes = tarArchive([
      tarMember({ name: './top//a/', type: '5' }),
      tarMember({ name: 'top/./a//f', content: 'f' }),
      tarMember({ name: Buffer.from([0x74, 0x6f, 0x70, 0x2f, 0xff, 0xfe]), content: 'latin1' }),
    ]);
    const { cache, node } = await ingest(bytes);
    const dir = await cache.directories.get((node as { digest: Uint8Array }).digest);
    const names = [...dir!].map((e) => hex(e.name));
    expect(names).toEqual(['61', 'fffe']);
  });

  it('skips a pax global header (git archive) and takes a pax mtime over the header field', async () => {
    const r = await ingest(archive('pax-global.tar'));
    const t = await listTree(r.cache, r.node);
    expect([...t.keys()].sort()).toEqual(['', 'file']);
    expect(r.lastModified).toBe(NEW_MTIME + 1);
  });

  it('an archive of only end-of-archive blocks is an empty directory; so is an empty zip', async () => {
    const tar = await ingest(Buffer.alloc(10240));
    const zip = await ingest(zipArchive([]));
    expect(tar.node).toEqual(zip.node);
    expect(tar.narHash).toBe('sha256-pQpattmS9VmO3ZIQUFn66az8GSmB4IvYhTTCFn6SUmo=');
    expect(tar.lastModified).toBe(0);
  });

  it('does not leave the zip spool file behind', async () => {
    const spools = () =>
      readdirSync(tmpdir()).filter((f) => f.startsWith(`fetch-cache-zip-${process.pid}-`)).length;
    const before = spools();
    await ingest(archive('pkg.zip'));
    expect(spools()).toBe(before);
  });

  it("passes the source's own errors through unchanged", async () => {
    const cache = await openCache({ memory: true });
    const httpError = new FetchCacheError('ERR_HTTP', 'connection reset');
    const socketError = new Error('ECONNRESET');
    for (const [err, bytes] of [
      [httpError, archive('pkg.tar.gz')],
      [socketError, archive('pkg.tar.gz')],
      [socketError, archive('pkg.tar')],
      [socketError, archive('pkg.zip')],
    ] as const) {
      async function* failing() {
        yield bytes.subarray(0, 300);
        throw err;
      }
      await expect(ingestTarball(failing(), cache)).rejects.toBe(err);
    }
  });
});

describe('modern Nix (>= 2.21) where it differs from the reference Nix 2.8', () => {
  it('root selection: a single top-level FILE is not the root (Nix 2.8 made it the root)', async () => {
    const r = await ingest(archive('onefile.tar.gz'));
    const golden = goldens.cases['onefile.tar.gz']!;
    const vector = vectors.tarballExperiments.cases.find((c) => c.tarball.startsWith('onefile'))!;
    // Ours: a directory holding only.txt, the modern answer in fixtures/tarball-vectors.json.
    expect(r.node.type).toBe('directory');
    expect(vector.modernExpected).toContain(r.narHash);
    expect(r.narHash).toBe(golden.modern.narHash);
    // Nix 2.8: the file itself is the root (store path zwbgmgil…), recorded from Nix 2.8.
    expect('storePath' in golden.nix28FetchTarball && golden.nix28FetchTarball.storePath).toBe(
      '/nix/store/zwbgmgil4qsjszdwisjspky1mz8c4sj4-source',
    );
    expect(vector.nix28).toContain('zwbgmgil4qsjszdwisjspky1mz8c4sj4-source');
    expect(r.storePath).not.toBe('/nix/store/zwbgmgil4qsjszdwisjspky1mz8c4sj4-source');
  });

  it('root selection: several top-level entries are fine (Nix 2.8: "unexpected number of top-level files")', async () => {
    const r = await ingest(archive('multi.tar.gz'));
    const golden = goldens.cases['multi.tar.gz']!;
    expect(golden.nix28FetchTarball).toEqual({
      error: expect.stringContaining('unexpected number of top-level files'),
    });
    const t = await listTree(r.cache, r.node);
    expect([...t.keys()].sort()).toEqual(['', 'a', 'b', 'c', 'c/d']);
    expect(r.narHash).toBe(golden.modern.narHash);
  });

  it('root selection: a single top-level symlink is not dereferenced either', async () => {
    const r = await ingest(tarArchive([tarMember({ name: 'only', type: '2', linkname: 'somewhere' })]));
    const t = await listTree(r.cache, r.node);
    expect(t.get('only')).toEqual({ type: 'symlink', target: 'somewhere' });
  });

  it('lastModified is the newest mtime of all members (Nix 2.8: the mtime of the top-level entry)', async () => {
    // pkg-1.0/ and all but one member have OLD_MTIME; src/main.c has NEW_MTIME.
    const r = await ingest(archive('pkg.tar'));
    expect(r.lastModified).toBe(NEW_MTIME);
    expect(r.lastModified).not.toBe(OLD_MTIME);
    // Members that are later replaced still count.
    const replaced = tarArchive([
      tarMember({ name: 'top/x', content: 'a', mtime: NEW_MTIME }),
      tarMember({ name: 'top/x', content: 'b', mtime: OLD_MTIME }),
    ]);
    expect((await ingest(replaced)).lastModified).toBe(NEW_MTIME);
  });

  it('duplicate paths: the later member wins (Nix 2.8 extracted over the earlier one too)', async () => {
    const r = await ingest(archive('duplicates.tar'));
    expect(r.storePath).toBe(
      (goldens.cases['duplicates.tar']!.nix28FetchTarball as { storePath: string }).storePath,
    );
  });
});

describe('zip specifics', () => {
  it('reads Unix modes, symlinks and UT mtimes from a zip', async () => {
    const bytes = zipArchive([
      { name: 'z/', mode: 0o40755 },
      { name: 'z/run', mode: 0o100744, content: '#!/bin/sh\n', deflate: true, mtime: NEW_MTIME },
      { name: 'z/data', mode: 0o100645, content: 'data' },
      { name: 'z/l', mode: 0o120777, content: 'run' },
    ]);
    const r = await ingest(bytes);
    const t = await listTree(r.cache, r.node);
    expect(t.get('run')).toMatchObject({ type: 'file', executable: true });
    expect(t.get('data')).toMatchObject({ type: 'file', executable: false });
    expect(t.get('l')).toEqual({ type: 'symlink', target: 'run' });
    expect(r.lastModified).toBe(NEW_MTIME);
  });

  it('a gzip-compressed zip is still a zip (detected after decompression)', async () => {
    const { gzipSync } = await import('node:zlib');
    const r = await ingest(gzipSync(archive('pkg.zip')));
    expect(r.narHash).toBe(goldens.cases['pkg.zip']!.modern.narHash);
  });
});
