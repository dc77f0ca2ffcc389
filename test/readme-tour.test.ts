/**
 * The README's five-minute tour, run as written: the shell block after `<!-- tour -->` is extracted from
 * README.md and run by bash (`-e -o pipefail`: any failing command fails the run) in an empty directory,
 * with `fetch-cache` on PATH (bin/), a fresh home (so the default cache root is used, as for a user), and
 * the real Nix. Two mechanical rewrites make it hermetic, and nothing else is changed: `https://github.com`
 * becomes a server on 127.0.0.1 that answers the tour's URLs (the archive path, and `git http-backend` for
 * `nix-systems/default.git`, a repository made here), and the port 5000 of `serve` a free loopback port.
 * Nix's store is a chroot store in the temp dir (`NIX_REMOTE`), so nothing touches /nix. Then: the path
 * `fetch` printed is the one Nix realised, copied from our server (its own log says so), with the NAR hash
 * `path-info` printed, which `nix hash path` confirms on Nix's copy; the git fetch, the cache info, the
 * lockfile (the repository's rev) and `lock --check` are what the README says. Without `nix` (never in
 * CI, where it must be installed) only the Nix step is skipped: a stand-in `nix-store` says so.
 */

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBuilt, REPO_ROOT, runCommand } from './helpers/cli.js';
import { gitHttpHandler } from './helpers/git-http-server.js';
import { git, gitEnv } from './helpers/git-repos.js';
import { nixAvailable, runNix } from './helpers/nix.js';

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

/** The shell block right after `<!-- tour -->`. */
function tourBlock(): string {
  const m = /<!-- tour -->\n```sh\n([\s\S]*?)\n```\n/.exec(readme);
  if (m === null) throw new Error('README.md has no <!-- tour --> block');
  return `${m[1]}\n`;
}

const tour = tourBlock();
const archiveUrl = /https:\/\/github\.com(\/\S+\.tar\.gz)/.exec(tour);
const live = nixAvailable();

let tmp: string;
let github: Server;
let githubBase: string;
let rev: string;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

/** A port nobody listens on now (for `serve --bind`). */
async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'fc-readme-tour-'));
  // github.com/nix-systems/default, as far as the tour asks for it: a repository with a main branch, and the
  // archive the tour fetches (of that repository's head: its content is ours, its URL the README's).
  const work = join(tmp, 'work');
  mkdirSync(work);
  git(tmp, ['init', '-q', work]);
  writeFileSync(join(work, 'default.nix'), '[ "aarch64-linux" "x86_64-linux" ]\n');
  writeFileSync(join(work, 'flake.nix'), '{ outputs = _: { }; }\n');
  git(work, ['add', '.']);
  git(work, ['-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', 'systems']);
  rev = git(work, ['rev-parse', 'HEAD']).trim();
  const repos = join(tmp, 'repos');
  mkdirSync(join(repos, 'nix-systems'), { recursive: true });
  git(tmp, ['clone', '-q', '--bare', work, join(repos, 'nix-systems', 'default.git')]);
  const tar = spawnSync('git', ['archive', '--format=tar', `--prefix=default-${rev}/`, 'HEAD'], {
    cwd: work,
    env: gitEnv(),
  });
  if (tar.status !== 0) throw new Error(`git archive: ${tar.stderr.toString()}`);
  const archive = gzipSync(tar.stdout);
  const gitHttp = gitHttpHandler(repos);
  github = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (/^\/[^/]+\/[^/]+\.git(\/|$)/.test(path)) return gitHttp(req, res);
    if (archiveUrl !== null && path === archiveUrl[1]) return res.writeHead(200).end(archive);
    res.writeHead(404).end('not found');
  });
  githubBase = `http://127.0.0.1:${await listen(github)}`;
});

afterAll(async () => {
  github?.closeAllConnections();
  await new Promise((resolve) => github?.close(resolve));
  rmSync(tmp, { recursive: true, force: true });
});

describe.runIf(cliBuilt())('the README tour', () => {
  it('names the URLs and port it rewrites', () => {
    expect(archiveUrl).not.toBeNull();
    expect(tour).toContain('https://github.com/nix-systems/default.git');
    expect(tour).toContain('127.0.0.1:5000');
  });

  it('runs as written: fetch, serve, substitute with nix, lock', async () => {
    if (process.env.CI === 'true') expect(live, 'CI must have nix installed').toBe(true);
    const port = await freePort();
    const script = tour
      .replaceAll('https://github.com', githubBase)
      .replaceAll('127.0.0.1:5000', `127.0.0.1:${port}`);
    const cwd = join(tmp, 'session');
    const home = join(tmp, 'home');
    const nixRoot = join(tmp, 'nix-root');
    const shims = join(tmp, 'shims');
    for (const d of [cwd, home, shims]) mkdirSync(d, { recursive: true });
    if (!live) {
      writeFileSync(
        join(shims, 'nix-store'),
        '#!/bin/sh\necho "nix-store: skipped, nix is not installed" >&2\n',
      );
      chmodSync(join(shims, 'nix-store'), 0o755);
    }
    const env = {
      PATH: `${shims}:${join(REPO_ROOT, 'bin')}:${process.env.PATH}`,
      HOME: home,
      NIX_REMOTE: nixRoot,
      FETCH_CACHE_ROOT: undefined,
      FETCH_CACHE_STORE: undefined,
      NIX_CONFIG: undefined,
      XDG_CACHE_HOME: undefined,
      XDG_CONFIG_HOME: undefined,
    };
    // In a process group of its own, killed afterwards: a `serve &` the script left running goes too.
    const r = await runCommand('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd, env, group: true });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stderr).not.toMatch(/ERR_/);

    // 1. fetch tarball (captured in $src), path-info --json of it, fetch git.
    const [info] = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('[{'))!) as {
      path: string;
      narHash: string;
      ca: string;
    }[];
    expect(info!.path).toMatch(/^\/nix\/store\/[0-9a-z]{32}-source$/);
    expect(info!.ca).toMatch(/^fixed:r:sha256:/);
    const paths = r.stdout.split('\n').filter((l) => /^\/nix\/store\/[0-9a-z]{32}-source$/.test(l));
    // 2. serve answers: the cache info curl printed.
    expect(r.stdout).toContain('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
    // 4. the lock and its check.
    expect(r.stdout).toContain('added systems\n');
    expect(r.stdout).toMatch(/pins\.lock: added 1, updated 0, unchanged 0, removed 0\n/);
    expect(r.stdout).toContain('checked 1 pins: all ok\n');
    const lock = JSON.parse(readFileSync(join(cwd, 'pins.lock'), 'utf8')) as {
      pins: Record<string, { rev: string; storePath: string }>;
    };
    expect(lock.pins.systems!.rev).toBe(rev);
    // The archive is `git archive` of the repository's head, so the tarball, the git fetch and the pin are
    // one tree, one store path: printed by `fetch git`, then (with Nix) by `nix-store --realise`.
    expect(lock.pins.systems!.storePath).toBe(info!.path);
    expect(paths).toEqual(live ? [info!.path, info!.path] : [info!.path]);

    // 3. Nix realised the fetched path from our server, with our NAR hash.
    if (!live) {
      expect(r.stderr).toContain('nix-store: skipped');
      return;
    }
    expect(r.stderr).toContain(`copying path '${info!.path}' from 'http://127.0.0.1:${port}'`);
    const hashed = await runNix(['hash', 'path', join(nixRoot, info!.path)], {
      env: { NIX_CONFIG: 'experimental-features = nix-command' },
    });
    expect(hashed.code, hashed.stderr).toBe(0);
    expect(hashed.stdout.trim()).toBe(info!.narHash);
  });
});
