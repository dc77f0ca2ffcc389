/**
 * A small world of upstreams for the pin tests, all on loopback and all
 * deterministic (fixed contents, times and commit ids, so Nix goldens hold
 * without Nix): an HTTP server with tarballs and files, a `git http-backend`
 * server over a directory of repositories — test/helpers/git-repos.ts'
 * `main.git`, plus `acme/widget.git` with semver tags — and GitHub-style
 * archive routes `/<owner>/<repo>/archive/<rev>.tar.gz` made with
 * `git archive` for every commit of the widget. Helpers add commits and tags
 * so tests can watch `update` move.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tarArchive, tarMember } from '../helpers/archives.js';
import { type GitHttpServer, startGitHttpServer } from '../helpers/git-http-server.js';
import {
  BASE_TIME,
  buildFixtureRepos,
  FastImport,
  type FixtureRepos,
  git,
  gitEnv,
  importRepo,
} from '../helpers/git-repos.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

export const MTIME = 1_600_000_000;

/** `pkg-1.0/` with a file, an executable and a symlink. */
export function pkgTarball(): Buffer {
  return gzipSync(
    tarArchive([
      tarMember({ name: 'pkg-1.0/', type: '5', mode: 0o755, mtime: MTIME }),
      tarMember({ name: 'pkg-1.0/README', content: 'pkg 1.0\n', mtime: MTIME }),
      tarMember({ name: 'pkg-1.0/bin/', type: '5', mode: 0o755, mtime: MTIME }),
      tarMember({ name: 'pkg-1.0/bin/run', mode: 0o755, content: '#!/bin/sh\necho run\n', mtime: MTIME + 5 }),
      tarMember({ name: 'pkg-1.0/link', type: '2', linkname: 'README', mtime: MTIME }),
    ]),
  );
}

export function dataTarball(): Buffer {
  return gzipSync(
    tarArchive([
      tarMember({ name: 'data/', type: '5', mode: 0o755, mtime: MTIME }),
      tarMember({ name: 'data/table.csv', content: 'a,b\n1,2\n', mtime: MTIME + 60 }),
    ]),
  );
}

export const HELLO = 'hello, pins\n';

export interface PinWorld {
  readonly tmp: string;
  readonly http: TestServer;
  readonly git: GitHttpServer;
  readonly reposRoot: string;
  readonly repos: FixtureRepos;
  readonly widget: string;
  /** Serve a GitHub archive for every commit of the widget. */
  publishArchives(): void;
  /** A new commit on `branch` of `dir` changing `file`; returns its id. */
  commit(dir: string, file: string, content: string, time: number, branch?: string): string;
  tag(dir: string, name: string, rev?: string): void;
  stop(): Promise<void>;
  close(): Promise<void>;
}

function buildWidget(dir: string): void {
  const fi = new FastImport();
  let prev = fi.commit('refs/heads/main', BASE_TIME, 'widget 0.9\n', [
    ['100644', 'widget.txt', 'widget 0.9\n'],
    ['100755', 'bin/widget', '#!/bin/sh\necho widget\n'],
  ]);
  fi.lightweightTag('v0.9.0', prev);
  const versions = ['1.0.0', '1.1.0', '1.2.0-rc.1', '2.0.0'];
  versions.forEach((v, i) => {
    prev = fi.commit(
      'refs/heads/main',
      BASE_TIME + 60 * (i + 1),
      `widget ${v}\n`,
      [['100644', 'widget.txt', `widget ${v}\n`]],
      {
        from: prev,
      },
    );
    if (v === '1.1.0') fi.annotatedTag(`v${v}`, prev, BASE_TIME + 60 * (i + 1) + 1, `release ${v}\n`);
    else fi.lightweightTag(`v${v}`, prev);
  });
  fi.commit('refs/heads/main', BASE_TIME + 600, 'widget next\n', [['100644', 'NEXT', 'next\n']], {
    from: prev,
  });
  importRepo(dir, fi);
}

export async function startPinWorld(): Promise<PinWorld> {
  const tmp = mkdtempSync(join(tmpdir(), 'fc-pins-'));
  const reposRoot = join(tmp, 'repos');
  const repos = buildFixtureRepos(reposRoot);
  const widget = join(reposRoot, 'acme', 'widget.git');
  buildWidget(widget);
  const http = await startServer({
    '/pkg.tar.gz': { body: pkgTarball() },
    '/data.tar.gz': { body: dataTarball() },
    '/hello.txt': { body: HELLO },
  });
  const gitServer = await startGitHttpServer(reposRoot);
  const world: PinWorld = {
    tmp,
    http,
    git: gitServer,
    reposRoot,
    repos,
    widget,
    publishArchives() {
      for (const rev of git(widget, ['rev-list', '--all']).split('\n')) {
        const tar = spawnSync('git', ['archive', '--format=tar', `--prefix=widget-${rev}/`, rev], {
          cwd: widget,
          env: gitEnv(),
          maxBuffer: 1 << 28,
        });
        if (tar.status !== 0) throw new Error(`git archive failed: ${tar.stderr.toString()}`);
        http.route(`/acme/widget/archive/${rev}.tar.gz`, { body: gzipSync(tar.stdout) });
      }
    },
    commit(dir, file, content, time, branch = 'main') {
      const stamp = `@${time} +0000`;
      const env = gitEnv({
        GIT_AUTHOR_NAME: 'A U Thor',
        GIT_AUTHOR_EMAIL: 'author@example.com',
        GIT_AUTHOR_DATE: stamp,
        GIT_COMMITTER_NAME: 'C O Mitter',
        GIT_COMMITTER_EMAIL: 'committer@example.com',
        GIT_COMMITTER_DATE: stamp,
      });
      const run = (args: string[]) => {
        const r = spawnSync('git', ['-c', 'commit.gpgsign=false', ...args], { cwd: dir, env });
        if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.toString()}`);
        return r.stdout.toString().trim();
      };
      run(['checkout', '-q', branch]);
      writeFileSync(join(dir, file), content);
      run(['add', file]);
      run(['commit', '-q', '-m', `change ${file}`]);
      return run(['rev-parse', 'HEAD']);
    },
    tag(dir, name, rev = 'HEAD') {
      git(dir, ['tag', name, rev]);
    },
    async stop() {
      await Promise.all([http.close(), gitServer.close()]);
    },
    async close() {
      await world.stop().catch(() => {});
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  world.publishArchives();
  return world;
}

/** A manifest over the world: every pin type, every selector. */
export function worldManifest(w: PinWorld, extra = ''): string {
  return `[github]
base = "${w.http.base}"
git-base = "${w.git.baseUrl}"

[pins.pkg]
type = "tarball"
url = "${w.http.url('/pkg.tar.gz')}"

[pins.hello]
type = "url"
url = "${w.http.url('/hello.txt')}"

[pins.data]
type = "url"
url = "${w.http.url('/data.tar.gz')}"
unpack = true

[pins.main-http]
type = "git"
url = "${w.git.baseUrl}/main.git"
ref = "main"

[pins.main-file]
type = "git"
url = "file://${w.repos.main}"
ref = "feature"

[pins.widget-tag]
type = "git"
url = "${w.git.baseUrl}/acme/widget.git"
tag = "^1.0"
prefix = "v"

[pins.widget]
type = "github"
owner = "acme"
repo = "widget"
ref = "main"

[pins.widget-rel]
type = "github"
owner = "acme"
repo = "widget"
tag = "*"
prefix = "v"
${extra}`;
}
