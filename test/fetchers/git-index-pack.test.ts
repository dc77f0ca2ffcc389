/**
 * Our pack indexer (src/fetchers/git/index-pack.ts) against real git: for packs written by
 * `git pack-objects` (OFS_DELTA and, with --no-delta-base-offset, REF_DELTA; with and without deltas)
 * the `.idx` is byte-identical with `git index-pack`'s; a thin pack resolves its bases through the
 * repository and indexes exactly the objects git put in it; corrupt packs are ERR_GIT. The fetch-level
 * tests (git.test.ts) cover the indexer inside real fetches over git http-backend.
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFetchCacheError } from '../../src/errors.js';
import { indexPack } from '../../src/fetchers/git/index-pack.js';
import { GitObjects } from '../../src/fetchers/git/objects.js';
import { buildLargeRepo, git, gitEnv } from '../helpers/git-repos.js';

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
function packOf(revs: string, flags: string[]): Buffer {
  return execFileSync('git', ['pack-objects', '--revs', '-q', '--stdout', ...flags], {
    cwd: repo,
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

it('reports every object it indexed with its id, and the commits it saw give the parents git records', async () => {
  const pack = packOf('main', []);
  const seen = new Map<string, string>();
  const learned = new GitObjects(join(work, 'empty.git'));
  indexPack(pack, noExternal, (oid, obj) => {
    expect(createHash('sha1').update(`${obj.type} ${obj.data.length}\0`).update(obj.data).digest('hex')).toBe(
      oid,
    );
    seen.set(oid, obj.type);
    if (obj.type === 'commit') learned.learnCommit(oid, obj.data);
  });
  const all = git(repo, ['rev-list', '--objects', 'main'])
    .split('\n')
    .map((l) => l.slice(0, 40));
  expect([...seen.keys()].sort()).toEqual([...new Set(all)].sort());
  // The parents come from memory: this GitObjects has no repository behind it.
  for (const line of git(repo, ['rev-list', '--parents', 'main']).split('\n')) {
    const [commit, ...parents] = line.split(' ');
    expect(await learned.parents(commit!)).toEqual(parents);
  }
});
