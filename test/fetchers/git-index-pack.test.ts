/**
 * Our pack indexer (src/fetchers/git/index-pack.ts) against real git: for packs written by
 * `git pack-objects` (OFS_DELTA and, with --no-delta-base-offset, REF_DELTA; with and without deltas)
 * the `.idx` is byte-identical with `git index-pack`'s; a thin pack resolves its bases through the
 * repository and indexes exactly the objects git put in it; corrupt packs are ERR_GIT. Every case runs
 * against both indexers: the JavaScript one and, where the addon is built (skipped otherwise, saying so
 * in the titles), the native addon's (src/native/git-pack.cc). The fetch-level tests (git.test.ts)
 * cover the indexer inside real fetches over git http-backend.
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isFetchCacheError } from '../../src/errors.js';
import { type CommitSink, indexPack } from '../../src/fetchers/git/index-pack.js';
import { GitObjects } from '../../src/fetchers/git/objects.js';
import type { PackedObject } from '../../src/fetchers/git/pack.js';
import { gitPack } from '../../src/native/index.js';
import { buildLargeRepo, git, gitEnv } from '../helpers/git-repos.js';
import { withAddon } from '../helpers/native.js';

let work: string;
let repo: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'fc-index-pack-'));
  repo = join(work, 'repo');
  buildLargeRepo(repo, 120, 60);
}, 120_000);

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

/** `git pack-objects` of `revs` (rev-list syntax, one per line) with `flags`; returns the pack bytes. */
function packOf(revs: string, flags: string[], cwd = repo): Buffer {
  return execFileSync('git', ['pack-objects', '--revs', '-q', '--stdout', ...flags], {
    cwd,
    env: gitEnv(),
    input: `${revs}\n`,
    maxBuffer: 1 << 28,
  });
}

/** What `git index-pack` writes for `pack`. */
async function gitIndex(pack: Buffer, name: string): Promise<Buffer> {
  const file = join(work, `${name}-copy.pack`);
  execFileSync('sh', ['-c', `cat > '${file}'`], { input: pack });
  execFileSync('git', ['index-pack', '-o', join(work, `${name}-copy.idx`), file], { env: gitEnv() });
  return readFile(join(work, `${name}-copy.idx`));
}

const noExternal = () => undefined;

const native = gitPack();
const nativeBuilt = native !== undefined;

type Index = (
  pack: Buffer,
  external: (oid: string) => PackedObject | undefined,
  onCommit?: CommitSink,
) => Buffer;
const impls: [string, Index, boolean][] = [
  ['javascript', (p, e, c) => indexPack(p, e, c, { native: false }), true],
  [withAddon('native', native), (p, e, c) => indexPack(p, e, c), nativeBuilt],
];

describe.each(impls)('%s indexer', (_impl, indexPack, runs) => {
  beforeEach((ctx) => ctx.skip(!runs));

  describe('the .idx equals git index-pack', () => {
    const cases: [string, string[]][] = [
      ['ofs-delta', []],
      ['ref-delta', ['--no-delta-base-offset']],
      ['no-deltas', ['--depth=0', '--window=0']],
      ['deep-chains', ['--depth=250', '--window=50']],
    ];
    it.each(cases)('%s', async (name, flags) => {
      const pack = packOf('main', flags);
      const ours = indexPack(pack, noExternal);
      expect(ours.equals(await gitIndex(pack, name))).toBe(true);
    });
  });

  it('empty objects: an empty file and an empty tree, beside two equal files', async () => {
    const small = join(work, `small-${_impl}`);
    await mkdir(small, { recursive: true });
    git(small, ['init', '-q']);
    await writeFile(join(small, 'empty'), '');
    await writeFile(join(small, 'a'), 'x'.repeat(5000));
    await writeFile(join(small, 'b'), 'x'.repeat(5000));
    git(small, ['add', '.']);
    git(small, ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'one']);
    // A commit of the empty tree.
    const empty = git(small, ['hash-object', '-t', 'tree', '-w', '--stdin'], '');
    const top = git(
      small,
      ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit-tree', empty, '-p', 'HEAD', '-m', 'empty'],
      '',
    );
    git(small, ['update-ref', 'refs/heads/main', top]);
    const pack = packOf('main', [], small);
    expect(indexPack(pack, noExternal).equals(await gitIndex(pack, `small-${_impl}`))).toBe(true);
  });

  it('a thin pack resolves its bases through the repository and lists exactly the objects sent', () => {
    const pack = packOf('main\n^main~40', ['--thin']);
    expect(() => indexPack(pack, noExternal)).toThrow(/missing delta base/);
    const objects = new GitObjects(join(repo, '.git'));
    const idx = indexPack(pack, (oid) => objects.readRaw(oid));
    const n = idx.readUInt32BE(8 + 255 * 4);
    const ids = new Set<string>();
    for (let i = 0; i < n; i++) ids.add(idx.toString('hex', 1032 + i * 20, 1052 + i * 20));
    const expected = git(repo, ['rev-list', '--objects', 'main', '^main~40'])
      .split('\n')
      .map((l) => l.slice(0, 40));
    expect([...ids].sort()).toEqual([...new Set(expected)].sort());
  });

  describe('corrupt packs are ERR_GIT', () => {
    /** The pack with its trailing checksum recomputed, so the damage is found by the parse, not the checksum. */
    const resum = (body: Buffer) => Buffer.concat([body, createHash('sha1').update(body).digest()]);
    const mutations: [string, (p: Buffer) => Buffer, RegExp][] = [
      [
        'a flipped byte (checksum)',
        (p) => {
          const q = Buffer.from(p);
          q[100]! ^= 0xff;
          return q;
        },
        /checksum/,
      ],
      ['truncated', (p) => p.subarray(0, p.length - 100), /checksum|ends|inflate/],
      [
        'one object more announced than present',
        (p) => {
          const q = Buffer.from(p.subarray(0, p.length - 20));
          q.writeUInt32BE(q.readUInt32BE(8) + 1, 8);
          return resum(q);
        },
        /ends after/,
      ],
      [
        'one object fewer announced',
        (p) => {
          const q = Buffer.from(p.subarray(0, p.length - 20));
          q.writeUInt32BE(q.readUInt32BE(8) - 1, 8);
          return resum(q);
        },
        /after the last object/,
      ],
      ['not a pack', () => resum(Buffer.from('JUNK\0\0\0\x02\0\0\0\0')), /PACK header/],
      [
        'damaged zlib data',
        (p) => {
          const q = Buffer.from(p.subarray(0, p.length - 20));
          for (let i = 40; i < 60; i++) q[i] = 0xaa;
          return resum(q);
        },
        /inflate|bytes|type|base/,
      ],
    ];
    it.each(mutations)('%s', (_name, mutate, message) => {
      const pack = packOf('main~100', []);
      let error: unknown;
      try {
        indexPack(mutate(pack), noExternal);
      } catch (e) {
        error = e;
      }
      expect(isFetchCacheError(error) && error.code === 'ERR_GIT').toBe(true);
      expect((error as Error).message).toMatch(message);
    });
  });

  it('reports every commit with its id, and the commits it saw give the parents git records', async () => {
    const pack = packOf('main', []);
    const seen = new Set<string>();
    const learned = new GitObjects(join(work, 'empty.git'));
    indexPack(pack, noExternal, (oid, data) => {
      expect(createHash('sha1').update(`commit ${data.length}\0`).update(data).digest('hex')).toBe(oid);
      seen.add(oid);
      learned.learnCommit(oid, data);
    });
    expect([...seen].sort()).toEqual(git(repo, ['rev-list', 'main']).split('\n').sort());
    // The parents come from memory: this GitObjects has no repository behind it.
    for (const line of git(repo, ['rev-list', '--parents', 'main']).split('\n')) {
      const [commit, ...parents] = line.split(' ');
      expect(await learned.parents(commit!)).toEqual(parents);
    }
  });
});

describe.runIf(nativeBuilt)(withAddon('native and JavaScript indexers agree', native), () => {
  /** What an indexer makes of a pack: its .idx (hex) or its error code. */
  const verdict = (index: () => Buffer): string => {
    try {
      return index().toString('hex');
    } catch (e) {
      return isFetchCacheError(e) ? `error ${e.code}` : `thrown ${String(e)}`;
    }
  };
  it('on 300 damaged packs (a random byte changed, checksum recomputed)', () => {
    const pack = packOf('main~60', []);
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let errors = 0;
    for (let i = 0; i < 300; i++) {
      const body = Buffer.from(pack.subarray(0, pack.length - 20));
      const at = 12 + rand(body.length - 12);
      body[at] = rand(256);
      const damaged = Buffer.concat([body, createHash('sha1').update(body).digest()]);
      const js = verdict(() => indexPack(damaged, noExternal, undefined, { native: false }));
      expect(verdict(() => indexPack(damaged, noExternal))).toBe(js);
      if (js.startsWith('error')) errors++;
    }
    expect(errors).toBeGreaterThan(100);
  });
});

describe.runIf(nativeBuilt)(withAddon('the native inflate that reads pack objects (pack.ts)', native), () => {
  const inflateExact = (data: Uint8Array, size: number) => native!.inflateExact(data, size);
  it.each([0, 1, 100, 70_000, 1 << 20])(
    '%i bytes: exactly that size inflates; one more or less does not',
    (n) => {
      const data = Buffer.alloc(n, 'ab');
      const z = deflateSync(data);
      // A pack entry's zlib data is followed by the next entry: trailing bytes are not part of it.
      const inPack = Buffer.concat([z, Buffer.from('next entry')]);
      expect(inflateExact(inPack, n)?.equals(data)).toBe(true);
      expect(inflateExact(inPack, n + 1)).toBeUndefined();
      if (n > 0) expect(inflateExact(inPack, n - 1)).toBeUndefined();
      expect(inflateExact(z.subarray(0, z.length - 5), n)).toBeUndefined(); // truncated
    },
  );
  it('refuses garbage and sizes zlib cannot reach', () => {
    expect(inflateExact(Buffer.from('not zlib at all'), 5)).toBeUndefined();
    expect(inflateExact(deflateSync(Buffer.alloc(10)), 2 ** 40)).toBeUndefined();
  });
});
