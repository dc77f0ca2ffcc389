/**
 * Deterministic git repositories for the git fetcher's tests and benchmark,
 * built with the real `git` CLI (`git fast-import`, then a checkout so the
 * working tree is clean). Authors, committers, dates and messages are fixed
 * and no user or system git config is read, so every machine produces the
 * same commit ids, which is what lets the Nix goldens hold without Nix.
 *
 * Layout below `root`: `sub.git` (a small repository used as a submodule) and
 * `main.git` (non-bare despite the name, so `../sub.git` resolves the same
 * over file:// and http): executables, a symlink, nested directories, an
 * empty file, `.gitattributes` with export-ignore at two levels, 56 commits on
 * `main`, a lightweight tag `v0.1`, an annotated tag `v1.0`, a `feature`
 * branch and a submodule at `deps/sub` with the relative URL `../sub.git`.
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** 2020-01-01T00:00:00Z; commit n is made n minutes later. */
export const BASE_TIME = 1_577_836_800;

/** An environment in which git reads no user/system config and signs nothing. */
export function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: '/nonexistent',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    LANG: 'C',
    LC_ALL: 'C',
    TZ: 'UTC',
    ...extra,
  };
}

/** Runs git; throws with stderr on failure; returns trimmed stdout. */
export function git(cwd: string, args: readonly string[], input?: string | Buffer): string {
  const r = spawnSync('git', ['-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false', ...args], {
    cwd,
    env: gitEnv(),
    input,
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${r.stderr.toString()}`);
  return r.stdout.toString().trim();
}

/** Builds a `git fast-import` stream. Files are `[mode, path, contents]` (mode 160000: contents = commit id). */
export class FastImport {
  private readonly parts: Buffer[] = [];
  private mark = 0;

  private data(text: string | Buffer): void {
    const bytes = Buffer.from(text);
    this.parts.push(Buffer.from(`data ${bytes.length}\n`), bytes, Buffer.from('\n'));
  }

  /** Adds a commit on `ref` at `time`; returns its mark (`:n`). */
  commit(
    ref: string,
    time: number,
    message: string,
    files: readonly (readonly [string, string, string | Buffer])[],
    opts: { from?: string; merge?: readonly string[]; deleteAll?: boolean; delete?: readonly string[] } = {},
  ): string {
    const mark = `:${++this.mark}`;
    this.parts.push(
      Buffer.from(
        `commit ${ref}\nmark ${mark}\nauthor A U Thor <author@example.com> ${time} +0000\n` +
          `committer C O Mitter <committer@example.com> ${time} +0000\n`,
      ),
    );
    this.data(message);
    if (opts.from) this.parts.push(Buffer.from(`from ${opts.from}\n`));
    for (const m of opts.merge ?? []) this.parts.push(Buffer.from(`merge ${m}\n`));
    if (opts.deleteAll) this.parts.push(Buffer.from('deleteall\n'));
    for (const path of opts.delete ?? []) this.parts.push(Buffer.from(`D ${path}\n`));
    for (const [mode, path, contents] of files) {
      if (mode === '160000') this.parts.push(Buffer.from(`M 160000 ${contents} ${path}\n`));
      else {
        this.parts.push(Buffer.from(`M ${mode} inline ${path}\n`));
        this.data(contents);
      }
    }
    this.parts.push(Buffer.from('\n'));
    return mark;
  }

  annotatedTag(name: string, from: string, time: number, message: string): void {
    this.parts.push(
      Buffer.from(`tag ${name}\nfrom ${from}\ntagger T Agger <tagger@example.com> ${time} +0000\n`),
    );
    this.data(message);
  }

  lightweightTag(name: string, from: string): void {
    this.parts.push(Buffer.from(`reset refs/tags/${name}\nfrom ${from}\n\n`));
  }

  stream(): Buffer {
    return Buffer.concat([...this.parts, Buffer.from('done\n')]);
  }
}

/** `git init` + fast-import + checkout of `main`. */
export function importRepo(dir: string, fi: FastImport): void {
  mkdirSync(dir, { recursive: true });
  git(dir, ['init', '-q']);
  git(dir, ['fast-import', '--quiet', '--done'], fi.stream());
  git(dir, ['checkout', '-q', '-f', 'main']);
}

export interface FixtureRepos {
  readonly root: string;
  readonly main: string;
  readonly sub: string;
  /** Commit id the submodule points at. */
  readonly subRev: string;
}

/** Builds `sub.git` and `main.git` below `root`. */
export function buildFixtureRepos(root: string): FixtureRepos {
  const sub = join(root, 'sub.git');
  const fs = new FastImport();
  const s1 = fs.commit('refs/heads/main', BASE_TIME, 'sub: first\n', [
    ['100644', 'lib.txt', 'library v1\n'],
    ['100755', 'tools/build.sh', '#!/bin/sh\necho build\n'],
  ]);
  fs.commit('refs/heads/main', BASE_TIME + 30, 'sub: second\n', [['100644', 'lib.txt', 'library v2\n']], {
    from: s1,
  });
  importRepo(sub, fs);
  const subRev = git(sub, ['rev-parse', 'HEAD']);

  const main = join(root, 'main.git');
  const fi = new FastImport();
  let prev = fi.commit('refs/heads/main', BASE_TIME + 60, 'initial\n', [
    ['100644', 'README.md', '# fixture\n'],
    ['100755', 'bin/run.sh', '#!/bin/sh\necho run\n'],
    ['120000', 'link-to-readme', 'README.md'],
    ['120000', 'bin/dangling', '../nowhere'],
    ['100644', 'a/b/c/deep.txt', 'deep\n'],
    ['100644', 'empty', ''],
    ['100644', '.gitattributes', '*.log export-ignore\n/ignored export-ignore\n'],
    ['100644', 'build.log', 'log\n'],
    ['100644', 'ignored/secret.txt', 'secret\n'],
    ['100644', 'docs/.gitattributes', 'draft.md export-ignore\n'],
    ['100644', 'docs/draft.md', 'draft\n'],
    ['100644', 'docs/guide.md', 'guide\n'],
    ['100644', 'docs/nested/draft.md', 'also ignored: a pattern without a slash matches at any depth\n'],
  ]);
  const marks: string[] = [prev];
  for (let n = 2; n <= 55; n++) {
    prev = fi.commit(
      'refs/heads/main',
      BASE_TIME + 60 * n,
      `commit ${n}\n`,
      [['100644', 'counter.txt', `${n}\n`]],
      {
        from: prev,
      },
    );
    marks.push(prev);
  }
  fi.lightweightTag('v0.1', marks[9]!);
  fi.annotatedTag('v1.0', marks[49]!, BASE_TIME + 60 * 50 + 1, 'release 1.0\n');
  let feature = marks[19]!;
  for (let n = 1; n <= 3; n++) {
    feature = fi.commit(
      'refs/heads/feature',
      BASE_TIME + 10_000 + n,
      `feature ${n}\n`,
      [['100644', 'feature.txt', `feature ${n}\n`]],
      { from: feature },
    );
  }
  fi.commit(
    'refs/heads/main',
    BASE_TIME + 60 * 56,
    'add submodule\n',
    [
      ['100644', '.gitmodules', '[submodule "deps/sub"]\n\tpath = deps/sub\n\turl = ../sub.git\n'],
      ['160000', 'deps/sub', subRev],
    ],
    { from: prev },
  );
  importRepo(main, fi);
  return { root, main, sub, subRev };
}

/** A repository with `commits` commits on `main`, each changing a few of `files` small files. */
export function buildLargeRepo(dir: string, commits: number, files = 400): void {
  const fi = new FastImport();
  let prev: string | undefined;
  for (let n = 1; n <= commits; n++) {
    const changed: [string, string, string][] = [];
    const count = n === 1 ? files : 3;
    for (let k = 0; k < count; k++) {
      const f = n === 1 ? k : (n * 7 + k * 13) % files;
      const body = `file ${f} at commit ${n}\n${'lorem ipsum dolor sit amet '.repeat(20 + (f % 40))}\n`;
      changed.push([f % 17 === 0 ? '100755' : '100644', `src/d${f % 20}/f${f}.txt`, body]);
    }
    prev = fi.commit(
      'refs/heads/main',
      BASE_TIME + n * 60,
      `commit ${n}\n`,
      changed,
      prev ? { from: prev } : {},
    );
  }
  importRepo(dir, fi);
}
