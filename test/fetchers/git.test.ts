/**
 * The git fetcher against real git repositories (built deterministically by
 * test/helpers/git-repos.ts), served over file:// and over smart HTTP through
 * `git http-backend`, and checked against real Nix 2.8 `builtins.fetchGit`:
 * live when `nix` is installed, always against the goldens it recorded in
 * fixtures/nix-goldens/fetch-git.json (re-record with
 * FETCH_CACHE_RECORD_GOLDENS=1). Tree listings are also checked against
 * `git archive` (export-ignore) and `git ls-tree`, and revCount against
 * `git rev-list --count`.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HttpClient } from 'isomorphic-git';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import type { IngestEntry } from '../../src/castore/ingest.js';
import { isFetchCacheError } from '../../src/errors.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { globToRegex, isExportIgnored, parseAttributes } from '../../src/fetchers/git/attributes.js';
import { parseGitmodules } from '../../src/fetchers/git/gitmodules.js';
import { GitObjects } from '../../src/fetchers/git/objects.js';
import { countRevs } from '../../src/fetchers/git/rev-count.js';
import { walkTree } from '../../src/fetchers/git/tree.js';
import { parseGitUrl, resolveSubmoduleUrl } from '../../src/fetchers/git/url.js';
import { type GitFetchSpec, ingestGit } from '../../src/fetchers/git.js';
import { makeHash, toSRI } from '../../src/nix/hash.js';
import { formatStorePath, makeFixedOutputPath } from '../../src/nix/store-path.js';
import { type GitHttpServer, startGitHttpServer } from '../helpers/git-http-server.js';
import {
  BASE_TIME,
  buildFixtureRepos,
  buildLargeRepo,
  FastImport,
  type FixtureRepos,
  git,
  gitEnv,
  importRepo,
} from '../helpers/git-repos.js';
import { nixAvailable, nixVersion, runNix } from '../helpers/nix.js';

const GOLDENS_URL = new URL('../../fixtures/nix-goldens/fetch-git.json', import.meta.url);
const RECORD = process.env.FETCH_CACHE_RECORD_GOLDENS === '1';
const live = nixAvailable();

interface NixResult {
  rev: string;
  revCount: number;
  lastModified: number;
  narHash: string;
  outPath: string;
}
interface GoldenCase {
  description: string;
  transport: 'file' | 'http';
  args: { ref?: string; rev?: string; submodules?: boolean };
  /** What Nix 2.8 returned. */
  nix: NixResult;
  /** Where we differ from Nix 2.8 on purpose. */
  ours?: Partial<NixResult>;
}
interface Goldens {
  source: string;
  nixVersion: string;
  note: string;
  commits: Record<string, string>;
  cases: Record<string, GoldenCase>;
}

let tmp: string;
let repos: FixtureRepos;
let server: GitHttpServer;
let cache: Cache;
let commits: Record<string, string>;

function revOf(expr: string): string {
  return git(repos.main, ['rev-parse', expr]);
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'fc-git-test-'));
  repos = buildFixtureRepos(join(tmp, 'repos'));
  server = await startGitHttpServer(repos.root);
  cache = await openCache({ memory: true });
  commits = {
    main: revOf('main'),
    feature: revOf('feature'),
    'v0.1': revOf('v0.1'),
    'v1.0': revOf('v1.0'),
    'v1.0^{commit}': revOf('v1.0^{commit}'),
    'main~26': revOf('main~26'),
    sub: repos.subRev,
  };
}, 60_000);

afterAll(async () => {
  await server?.close();
  await cache?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** The cases compared with Nix; args refer to `commits` so the goldens stay machine-independent. */
function caseList(): Record<string, Omit<GoldenCase, 'nix' | 'ours'>> {
  return {
    branch: {
      description: 'a branch by name (the HEAD commit has a submodule: gitlink → empty dir)',
      transport: 'file',
      args: { ref: 'main' },
    },
    'branch-http': {
      description: 'the same branch over smart HTTP (git http-backend)',
      transport: 'http',
      args: { ref: 'main' },
    },
    'other-branch': { description: 'a branch that is not HEAD', transport: 'file', args: { ref: 'feature' } },
    'lightweight-tag': {
      description: 'a lightweight tag by bare name',
      transport: 'file',
      args: { ref: 'v0.1' },
    },
    'annotated-tag': {
      description:
        'an annotated tag as refs/tags/…; Nix 2.8 reports the tag object as rev, we peel to the commit',
      transport: 'http',
      args: { ref: 'refs/tags/v1.0' },
    },
    'fixed-rev': {
      description: 'a fixed older rev on main',
      transport: 'file',
      args: { ref: 'main', rev: commits?.['main~26'] ?? '(resolved once the repositories exist)' },
    },
    'submodules-on': {
      description: 'submodules = true: the submodule tree mounted; Nix 2.8 checks out (no export-ignore)',
      transport: 'file',
      args: { ref: 'main', submodules: true },
    },
    'no-export-ignore': {
      description:
        'submodules = true on a commit without submodules: Nix 2.8 checkout path, i.e. export-ignore not applied',
      transport: 'file',
      args: { ref: 'refs/tags/v1.0', submodules: true },
    },
  };
}

function urlFor(transport: 'file' | 'http'): string {
  return transport === 'file' ? `file://${repos.main}` : `${server.baseUrl}/main.git`;
}

function nixExpr(url: string, args: GoldenCase['args']): string {
  const attrs = [`url = ${JSON.stringify(url)};`];
  if (args.ref !== undefined) attrs.push(`ref = ${JSON.stringify(args.ref)};`);
  if (args.rev !== undefined) attrs.push(`rev = ${JSON.stringify(args.rev)};`);
  if (args.submodules !== undefined) attrs.push(`submodules = ${args.submodules};`);
  return `let r = builtins.fetchGit { ${attrs.join(' ')} }; in { inherit (r) rev revCount lastModified narHash; storePath = r.outPath; }`;
}

async function nixFetchGit(url: string, args: GoldenCase['args']): Promise<NixResult> {
  const store = mkdtempSync(join(tmp, 'nix-store-'));
  const r = await runNix(['eval', '--json', '--impure', '--store', store, '--expr', nixExpr(url, args)], {
    env: { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'protocol.file.allow', GIT_CONFIG_VALUE_0: 'always' },
  });
  if (r.code !== 0) throw new Error(`nix eval failed: ${r.stderr}`);
  // An attrset with `outPath` would print as just that path, hence `storePath` in the expression.
  const { storePath, ...rest } = JSON.parse(r.stdout) as Omit<NixResult, 'outPath'> & { storePath: string };
  return { ...rest, outPath: storePath };
}

async function ours(
  spec: Omit<GitFetchSpec, 'type'>,
  c: Cache = cache,
  extra: { offline?: boolean; cacheRoot?: string; http?: HttpClient } = {},
) {
  const res = await ingestGit(
    { type: 'git', ...spec },
    {
      services: c,
      cacheRoot: extra.cacheRoot,
      offline: extra.offline ?? false,
      http: extra.http,
    },
  );
  const sum = await c.narCalc.calculate(res.node);
  const hash = makeHash('sha256', sum.narSha256);
  const outPath = formatStorePath(makeFixedOutputPath({ name: 'source', method: 'nar', hash }));
  return { ...res, narHash: toSRI(hash), outPath };
}

function loadGoldens(): Goldens {
  return JSON.parse(readFileSync(GOLDENS_URL, 'utf8')) as Goldens;
}

describe('fixture repositories', () => {
  it('have the same commit ids on every build (so goldens hold without Nix)', () => {
    const again = buildFixtureRepos(join(tmp, 'again'));
    expect(git(again.main, ['rev-parse', 'main', 'feature', 'v0.1', 'v1.0'])).toBe(
      git(repos.main, ['rev-parse', 'main', 'feature', 'v0.1', 'v1.0']),
    );
    if (!RECORD) expect(commits).toEqual(loadGoldens().commits);
  });
});

describe('builtins.fetchGit parity with Nix 2.8', () => {
  const recorded: Record<string, GoldenCase> = {};

  afterAll(() => {
    if (!RECORD || Object.keys(recorded).length !== Object.keys(caseList()).length) return;
    const goldens: Goldens = {
      source: `recorded from ${nixVersion()} (Debian nix-bin) by test/fetchers/git.test.ts with FETCH_CACHE_RECORD_GOLDENS=1, ${new Date().toISOString().slice(0, 10)}`,
      nixVersion: nixVersion(),
      note: 'builtins.fetchGit evaluated with `nix eval --json --impure --store <tmp>` on the repositories of test/helpers/git-repos.ts (file:// or git http-backend); `commits` are `git rev-parse` of those repositories. `ours` lists where fetch-cache differs from Nix 2.8 on purpose (annotated tags are peeled, as in modern Nix).',
      commits,
      cases: recorded,
    };
    writeFileSync(GOLDENS_URL, `${JSON.stringify(goldens, null, 2)}\n`);
  });

  for (const [name, c] of Object.entries(caseList())) {
    it(`${name}: ${c.description}`, async () => {
      const cases = caseList();
      const args = cases[name]!.args;
      const url = urlFor(c.transport);
      const got = await ours({ url, ...args });
      let nix: NixResult;
      if (live) {
        nix = await nixFetchGit(url, args);
        if (!RECORD)
          expect(nix, 'live Nix agrees with the recorded golden').toEqual(loadGoldens().cases[name]?.nix);
      } else nix = loadGoldens().cases[name]!.nix;
      const exceptions: Partial<NixResult> = {};
      if (args.ref === 'refs/tags/v1.0') {
        expect(nix.rev, 'Nix 2.8 reports the tag object').toBe(commits['v1.0']);
        exceptions.rev = commits['v1.0^{commit}']!;
      }
      if (RECORD)
        recorded[name] = {
          ...cases[name]!,
          nix,
          ...(Object.keys(exceptions).length ? { ours: exceptions } : {}),
        };
      expect({
        rev: got.metadata.rev,
        revCount: got.metadata.revCount,
        lastModified: got.metadata.lastModified,
        narHash: got.narHash,
        outPath: got.outPath,
      }).toEqual({ ...nix, ...exceptions });
    }, 60_000);
  }

  it('exportIgnore: false equals what Nix 2.8 gives without export-ignore (its checkout path)', async () => {
    const g = live ? undefined : loadGoldens().cases['no-export-ignore']!.nix;
    const ref = g ?? (await nixFetchGit(urlFor('file'), { ref: 'refs/tags/v1.0', submodules: true }));
    const off = await ours({ url: urlFor('file'), ref: 'refs/tags/v1.0', exportIgnore: false });
    const on = await ours({ url: urlFor('file'), ref: 'refs/tags/v1.0' });
    expect(off.narHash).toBe(ref.narHash);
    expect(on.narHash).not.toBe(ref.narHash);
  }, 60_000);

  it('exportIgnore with submodules is an error, as in modern Nix', async () => {
    await expect(ours({ url: urlFor('file'), submodules: true, exportIgnore: true })).rejects.toMatchObject({
      code: 'ERR_GIT',
    });
  });
});

/** Paths of an entry stream, with a type mark: `/` for directories, `@` symlinks, `*` executables. */
async function listing(entries: AsyncIterable<IngestEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of entries) {
    const p = Buffer.from(e.path).toString('utf8');
    if (p === '') continue;
    out.push(
      e.type === 'directory'
        ? `${p}/`
        : e.type === 'symlink'
          ? `${p}@`
          : e.type === 'file' && e.executable
            ? `${p}*`
            : p,
    );
  }
  return out.sort();
}

function gitArchiveListing(rev: string): string[] {
  const tar = spawnSync('git', ['archive', '--format=tar', rev], {
    cwd: repos.main,
    env: gitEnv(),
    maxBuffer: 1 << 28,
  });
  const list = spawnSync('tar', ['-tv'], { input: tar.stdout, encoding: 'utf8' });
  return list.stdout
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('g'))
    .map((l) => {
      const path = l.split(/\s+/).slice(5).join(' ');
      if (l.startsWith('d')) return path;
      if (l.startsWith('l')) return `${path.split(' -> ')[0]}@`;
      return l[3] === 'x' ? `${path}*` : path;
    })
    .sort();
}

describe('tree walk', () => {
  it('lists exactly what `git archive` does (modes, symlinks, export-ignore at two levels, gitlink dir)', async () => {
    const objects = new GitObjects(join(repos.main, '.git'));
    const commit = await objects.commit(commits.main!);
    const ourList = await listing(walkTree({ objects, tree: commit.tree, url: '' }, { exportIgnore: true }));
    expect(ourList).toEqual(gitArchiveListing(commits.main!));
    expect(ourList).toContain('bin/run.sh*');
    expect(ourList).toContain('link-to-readme@');
    expect(ourList).toContain('deps/sub/');
    expect(ourList).not.toContain('build.log');
    expect(ourList).not.toContain('docs/nested/draft.md');
  });

  it('without exportIgnore lists every tree entry (`git ls-tree -r -t`)', async () => {
    const objects = new GitObjects(join(repos.main, '.git'));
    const commit = await objects.commit(commits.main!);
    const ourList = await listing(walkTree({ objects, tree: commit.tree, url: '' }, { exportIgnore: false }));
    const lsTree = git(repos.main, ['ls-tree', '-r', '-t', commits.main!])
      .split('\n')
      .map((l) => {
        const [meta, path] = l.split('\t') as [string, string];
        const mode = meta.split(' ')[0];
        return mode === '040000' || mode === '160000'
          ? `${path}/`
          : mode === '120000'
            ? `${path}@`
            : mode === '100755'
              ? `${path}*`
              : path;
      })
      .sort();
    expect(ourList).toEqual(lsTree);
  });

  it('mounts submodule trees in place with submodules', async () => {
    const got = await ours({ url: urlFor('file'), submodules: true });
    const again = await ingestGit(
      { type: 'git', url: urlFor('file'), submodules: true },
      { services: cache, cacheRoot: undefined, offline: false },
    );
    expect(again.node).toEqual(got.node);
    const objects = new GitObjects(join(repos.main, '.git'));
    const commit = await objects.commit(commits.main!);
    const list = await listing(
      walkTree(
        { objects, tree: commit.tree, url: `file://${repos.main}` },
        {
          exportIgnore: false,
          openSubmodule: async (_parent, sub, rev) => {
            expect(sub.url).toBe('../sub.git');
            expect(rev).toBe(repos.subRev);
            const so = new GitObjects(join(repos.sub, '.git'));
            return { objects: so, tree: (await so.commit(rev)).tree, url: `file://${repos.sub}` };
          },
        },
      ),
    );
    expect(list).toContain('deps/sub/lib.txt');
    expect(list).toContain('deps/sub/tools/build.sh*');
  });
});

describe('refs, revs and errors', () => {
  it('defaults to the remote HEAD and reports the resolved ref', async () => {
    for (const url of [urlFor('file'), urlFor('http'), repos.main]) {
      const got = await ours({ url });
      expect(got.metadata).toMatchObject({
        rev: commits.main,
        ref: 'refs/heads/main',
        revCount: 56,
        submodules: false,
      });
    }
  });

  it('resolves tags by bare name and as refs/tags/…', async () => {
    const a = await ours({ url: urlFor('http'), ref: 'v1.0' });
    expect(a.metadata).toMatchObject({ rev: commits['v1.0^{commit}'], ref: 'refs/tags/v1.0', revCount: 50 });
    const b = await ours({ url: urlFor('file'), ref: 'refs/tags/v0.1' });
    expect(b.metadata).toMatchObject({ rev: commits['v0.1'], revCount: 10, lastModified: BASE_TIME + 600 });
  });

  it('the same rev with and without exportIgnore are two fetches, not one answer from the fetch index', async () => {
    const c = await openCache({ memory: true });
    try {
      const fetcher = new Fetcher(c);
      const spec = { type: 'git', url: urlFor('file'), rev: commits.main! } as const;
      const archive = await fetcher.fetch(spec);
      const tree = await new Fetcher(c).fetch({ ...spec, exportIgnore: false });
      const again = await new Fetcher(c).fetch({ ...spec, exportIgnore: true });
      expect(tree.path).not.toBe(archive.path);
      expect([tree.cached, again.cached, again.path]).toEqual([false, true, archive.path]);
    } finally {
      await c.close();
    }
  });

  it('a local repository is read again on every fetch (no TTL): a new commit is seen at once', async () => {
    const c = await openCache({ memory: true });
    const dir = join(tmp, 'moving');
    try {
      const fi = new FastImport();
      fi.commit('refs/heads/main', BASE_TIME, 'one\n', [['100644', 'f.txt', 'one\n']]);
      importRepo(dir, fi);
      const first = await new Fetcher(c).fetch({ type: 'git', url: `file://${dir}` });
      expect(first.metadata.rev).toBe(git(dir, ['rev-parse', 'HEAD']));
      writeFileSync(join(dir, 'f.txt'), 'two\n');
      git(dir, ['-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '-qam', 'two']);
      const second = await new Fetcher(c).fetch({ type: 'git', url: `file://${dir}` });
      expect(second.metadata.rev).toBe(git(dir, ['rev-parse', 'HEAD']));
      expect(second.path).not.toBe(first.path);
      const third = await new Fetcher(c).fetch({ type: 'git', url: `file://${dir}` });
      expect([third.cached, third.path]).toEqual([true, second.path]);
    } finally {
      await c.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('unknown ref → ERR_GIT', async () => {
    for (const url of [urlFor('file'), urlFor('http')]) {
      await expect(ours({ url, ref: 'no-such-branch' })).rejects.toMatchObject({ code: 'ERR_GIT' });
    }
  });

  it('malformed rev → ERR_GIT', async () => {
    for (const rev of ['abc', commits.main!.toUpperCase(), `${commits.main}0`]) {
      await expect(ours({ url: urlFor('file'), rev })).rejects.toMatchObject({ code: 'ERR_GIT' });
    }
  });

  it('a rev not on the fetched ref → ERR_GIT suggesting allRefs; a tree id → ERR_GIT', async () => {
    const c = await openCache({ memory: true });
    try {
      const missing = 'f'.repeat(40);
      await expect(ours({ url: urlFor('http'), ref: 'main', rev: missing }, c)).rejects.toThrow(/allRefs/);
      const tree = git(repos.main, ['rev-parse', 'main^{tree}']);
      await expect(ours({ url: urlFor('file'), rev: tree }, c)).rejects.toMatchObject({ code: 'ERR_GIT' });
    } finally {
      await c.close();
    }
  });

  it('unsupported URL schemes → ERR_BAD_URL; not a repository → ERR_GIT', async () => {
    await expect(ours({ url: 'ssh://example.com/x.git' })).rejects.toMatchObject({ code: 'ERR_BAD_URL' });
    await expect(ours({ url: tmp })).rejects.toMatchObject({ code: 'ERR_GIT' });
  });

  it('an unreachable server → ERR_HTTP', async () => {
    await expect(ours({ url: 'http://127.0.0.1:1/x.git', ref: 'main' })).rejects.toMatchObject({
      code: 'ERR_HTTP',
    });
  });
});

describe('the object cache', () => {
  it('serves a second fetch of everything with the server stopped; offline misses fail without a socket', async () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const srv = await startGitHttpServer(repos.root);
    const url = `${srv.baseUrl}/main.git`;
    const specs: Omit<GitFetchSpec, 'type'>[] = [
      { url, ref: 'main' },
      { url, ref: 'feature' },
      { url, ref: 'refs/tags/v1.0' },
      { url, ref: 'main', rev: commits['main~26']! },
      { url, submodules: true },
    ];
    const c = await openCache({ root });
    try {
      const first = [];
      for (const s of specs) first.push(await ours(s, c, { cacheRoot: root }));
      await srv.close();
      const calls: string[] = [];
      const spy: HttpClient = {
        request: async (req) => {
          calls.push(req.url);
          throw new Error('no network in this test');
        },
      };
      const connect = vi.spyOn(net.Socket.prototype, 'connect');
      try {
        for (const [i, s] of specs.entries()) {
          const again = await ours(s, c, { cacheRoot: root, offline: true, http: spy });
          expect(again.narHash).toBe(first[i]!.narHash);
          expect(again.metadata).toEqual(first[i]!.metadata);
        }
        // Pinned: not even online mode touches the network.
        const pinned = await ours({ url, rev: commits.main! }, c, { cacheRoot: root, http: spy });
        expect(pinned.narHash).toBe(first[0]!.narHash);
        expect(calls).toEqual([]);
        // Offline miss: a rev the mirror lacks, and a URL never fetched.
        await expect(
          ours({ url, rev: 'e'.repeat(40) }, c, { cacheRoot: root, offline: true, http: spy }),
        ).rejects.toMatchObject({ code: 'ERR_OFFLINE' });
        await expect(
          ours({ url: `${srv.baseUrl}/other.git` }, c, { cacheRoot: root, offline: true }),
        ).rejects.toMatchObject({ code: 'ERR_OFFLINE' });
        expect(calls).toEqual([]);
        expect(connect).not.toHaveBeenCalled();
      } finally {
        connect.mockRestore();
      }
      // Online with the server down: an unpinned ref continues with the last known value (as Nix does).
      const stale = await ours({ url, ref: 'main' }, c, { cacheRoot: root });
      expect(stale.metadata.rev).toBe(commits.main);
    } finally {
      await c.close();
      await srv.close();
    }
  }, 60_000);

  it('fetches a newer rev incrementally and the same rev twice without network', async () => {
    const work = join(tmp, 'inc');
    const r = buildFixtureRepos(work);
    const srv = await startGitHttpServer(work);
    const root = mkdtempSync(join(tmp, 'root-'));
    const c = await openCache({ root });
    try {
      const url = `${srv.baseUrl}/main.git`;
      const packBytes = () =>
        srv.requests.filter((q) => q.method === 'POST').reduce((n, q) => n + q.responseBytes, 0);
      const first = await ours({ url, ref: 'main' }, c, { cacheRoot: root });
      const coldBytes = packBytes();
      expect(coldBytes).toBeGreaterThan(0);
      // A new commit on main.
      writeFileSync(join(r.main, 'NEWS'), 'news\n');
      spawnSync('git', ['add', 'NEWS'], { cwd: r.main, env: gitEnv() });
      const env = gitEnv({
        GIT_AUTHOR_NAME: 'A',
        GIT_AUTHOR_EMAIL: 'a@example.com',
        GIT_COMMITTER_NAME: 'C',
        GIT_COMMITTER_EMAIL: 'c@example.com',
        GIT_AUTHOR_DATE: `@${BASE_TIME + 99_999} +0000`,
        GIT_COMMITTER_DATE: `@${BASE_TIME + 99_999} +0000`,
      });
      expect(spawnSync('git', ['commit', '-q', '-m', 'news'], { cwd: r.main, env }).status).toBe(0);
      const second = await ours({ url, ref: 'main' }, c, { cacheRoot: root });
      expect(second.metadata.rev).toBe(git(r.main, ['rev-parse', 'HEAD']));
      expect(second.metadata.revCount).toBe(first.metadata.revCount! + 1);
      expect(second.metadata.lastModified).toBe(BASE_TIME + 99_999);
      const incBytes = packBytes() - coldBytes;
      expect(incBytes).toBeGreaterThan(0);
      expect(incBytes * 5).toBeLessThan(coldBytes);
      const before = srv.requests.length;
      await ours({ url, rev: second.metadata.rev! }, c, { cacheRoot: root });
      await ours({ url, ref: 'main', rev: first.metadata.rev! }, c, { cacheRoot: root });
      expect(srv.requests.length).toBe(before);
      // An unmoved ref costs one listing, no pack.
      await ours({ url, ref: 'main' }, c, { cacheRoot: root });
      expect(srv.requests.slice(before).map((q) => q.method)).toEqual(['GET']);
    } finally {
      await c.close();
      await srv.close();
    }
  }, 60_000);

  it('shallow fetches skip revCount; a later full fetch deepens the mirror', async () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const c = await openCache({ root });
    try {
      const full = await ours({ url: urlFor('file'), ref: 'main' }, c);
      const shallow = await ours({ url: urlFor('http'), ref: 'main', shallow: true }, c, { cacheRoot: root });
      expect(shallow.metadata.revCount).toBeUndefined();
      expect(shallow.metadata.rev).toBe(commits.main);
      expect(shallow.narHash).toBe(full.narHash);
      const deep = await ours({ url: urlFor('http'), ref: 'main' }, c, { cacheRoot: root });
      expect(deep.metadata.revCount).toBe(56);
    } finally {
      await c.close();
    }
  }, 60_000);
});

describe('revCount', () => {
  it('counts ≥ 1,000 commits with merges like `git rev-list --count`, and caches by rev', async () => {
    const dir = join(tmp, 'large');
    buildLargeRepo(dir, 1200, 50);
    const objects = new GitObjects(join(dir, '.git'));
    const head = git(dir, ['rev-parse', 'HEAD']);
    const t0 = performance.now();
    expect(await countRevs(objects, head)).toBe(1200);
    expect(performance.now() - t0).toBeLessThan(10_000);
    const got = await ours({ url: dir });
    expect(got.metadata.revCount).toBe(1200);

    const merged = join(tmp, 'merge');
    const fi = new FastImport();
    const a = fi.commit('refs/heads/main', BASE_TIME, 'a\n', [['100644', 'f', 'a\n']]);
    const b = fi.commit('refs/heads/side', BASE_TIME + 1, 'b\n', [['100644', 'g', 'b\n']], { from: a });
    const c = fi.commit('refs/heads/main', BASE_TIME + 2, 'c\n', [['100644', 'f', 'c\n']], { from: a });
    fi.commit('refs/heads/main', BASE_TIME + 3, 'merge\n', [], { from: c, merge: [b] });
    importRepo(merged, fi);
    const mo = new GitObjects(join(merged, '.git'));
    expect(await countRevs(mo, git(merged, ['rev-parse', 'main']))).toBe(
      Number(git(merged, ['rev-list', '--count', 'main'])),
    );
    expect(await countRevs(mo, git(merged, ['rev-parse', 'main~1']))).toBe(2);
  }, 60_000);
});

describe('helpers', () => {
  it('gitattributes patterns follow gitignore rules', () => {
    const re = (p: string) => globToRegex(p);
    expect(re('*.log').test('a.log')).toBe(true);
    expect(re('*.log').test('a/b.log')).toBe(false);
    expect(re('a/**/b').test('a/b')).toBe(true);
    expect(re('a/**/b').test('a/x/y/b')).toBe(true);
    expect(re('**/b').test('x/b')).toBe(true);
    expect(re('a/**').test('a/x/y')).toBe(true);
    expect(re('[!a]?').test('bc')).toBe(true);
    expect(re('[!a]?').test('ac')).toBe(false);
    const root = parseAttributes(
      '',
      Buffer.from(
        '*.txt export-ignore\nkeep.txt -export-ignore\n/top export-ignore\ndir/ export-ignore\n"sp ace" export-ignore\n',
      ),
    );
    const sub = parseAttributes('s', Buffer.from('# comment\nb.txt !export-ignore\n'));
    expect(isExportIgnored([root], 'x/a.txt', false)).toBe(true);
    expect(isExportIgnored([root], 'x/keep.txt', false)).toBe(false);
    expect(isExportIgnored([root], 'top', true)).toBe(true);
    expect(isExportIgnored([root], 'x/top', true)).toBe(false);
    expect(isExportIgnored([root], 'x/dir', true)).toBe(true);
    expect(isExportIgnored([root], 'x/dir', false)).toBe(false);
    expect(isExportIgnored([root], 'sp ace', false)).toBe(true);
    expect(isExportIgnored([root, sub], 's/b.txt', false)).toBe(false);
    expect(isExportIgnored([root, sub], 's/c.txt', false)).toBe(true);
  });

  it('.gitmodules parsing and relative submodule URLs', () => {
    const m = parseGitmodules(
      '[submodule "a"]\n\tpath = deps/a\n\turl = ../a.git ; comment\n[submodule "b"]\n\tpath = "b dir"\n[core]\n\tpath = x\n',
    );
    expect([...m.values()]).toEqual([{ name: 'a', path: 'deps/a', url: '../a.git' }]);
    expect(resolveSubmoduleUrl('https://h/org/main.git', '../sub.git')).toBe('https://h/org/sub.git');
    expect(resolveSubmoduleUrl('https://h/org/main.git/', './sub')).toBe('https://h/org/main.git/sub');
    expect(resolveSubmoduleUrl('file:///r/main', '../x')).toBe('file:///r/x');
    expect(resolveSubmoduleUrl('/r/a/main', './../x')).toBe('/r/a/x');
    expect(resolveSubmoduleUrl('https://h/a', 'https://other/x')).toBe('https://other/x');
    expect(parseGitUrl('/tmp/x')).toEqual({ kind: 'local', url: 'file:///tmp/x', path: '/tmp/x' });
    expect(() => parseGitUrl('git://h/x')).toThrow(expect.objectContaining({ code: 'ERR_BAD_URL' }) as Error);
    expect(isFetchCacheError(new Error('x'))).toBe(false);
  });
});
