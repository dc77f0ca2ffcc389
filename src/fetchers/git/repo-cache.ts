/**
 * Where git objects live. A remote (http/https) repository is mirrored into
 * a bare repository `<root>/git/<sha256(url) prefix>` that grows with every
 * fetch, so a newer rev costs only the new objects (our refs are sent as
 * `have`s) and a rev already there costs no network at all. The mirror's refs
 * copy the remote's names (`refs/heads/x`, `refs/tags/x`, `HEAD` → branch),
 * updated on each online fetch; offline, they are the last known values. A
 * local repository (file:// or a path) is read in place; its per-URL
 * directory only holds the revCount cache. Memory caches (no root) put all of
 * this in one temporary directory per process, removed at exit (or, if the
 * process was killed, by the next process that makes one).
 *
 * Two processes fetching the same URL at once may both download; ref files
 * are replaced atomically, and packs are content-named, so the result is
 * still consistent.
 */

import * as fs from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { FetchCacheError } from '../../errors.js';
import { removeStaleOsTempDirs } from '../../fs/temp.js';
import { GitObjects } from './objects.js';
import type { RefListing } from './refs.js';
import { cacheKey } from './url.js';

let processRoot: string | undefined;

/** `<cacheRoot>/git`, or a per-process temporary directory for memory caches. */
export function gitRoot(cacheRoot: string | undefined): string {
  if (cacheRoot !== undefined) return join(cacheRoot, 'git');
  if (processRoot === undefined) {
    // The exit handler does not run in a killed process: its directory is removed by the next one here.
    removeStaleOsTempDirs('fetch-cache-git');
    const dir = fs.mkdtempSync(join(tmpdir(), `fetch-cache-git-${process.pid}-`));
    processRoot = dir;
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return processRoot;
}

export interface GitRepo {
  readonly url: string;
  readonly gitdir: string;
  readonly objects: GitObjects;
  /** Per-URL directory for derived data (revCount). */
  readonly cacheDir: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The git directory of a working tree (`.git` dir or `gitdir:` file) or a bare repository. */
export async function findGitDir(path: string): Promise<string> {
  const dotGit = join(path, '.git');
  try {
    const s = await stat(dotGit);
    if (s.isDirectory()) return dotGit;
    const m = /^gitdir:\s*(.+?)\s*$/m.exec(await readFile(dotGit, 'utf8'));
    if (m) return resolve(path, m[1]!);
  } catch {
    // no .git: maybe bare
  }
  if ((await exists(join(path, 'HEAD'))) && (await exists(join(path, 'objects')))) return path;
  throw new FetchCacheError('ERR_GIT', `'${path}' is not a git repository`, { path });
}

export async function openLocalRepo(gitRootDir: string, url: string, path: string): Promise<GitRepo> {
  const gitdir = await findGitDir(path);
  return { url, gitdir, objects: new GitObjects(gitdir), cacheDir: join(gitRootDir, cacheKey(url)) };
}

/** The mirror of a remote URL, created empty on first use. */
export async function openMirror(gitRootDir: string, url: string): Promise<GitRepo> {
  const gitdir = join(gitRootDir, cacheKey(url));
  // The refspec makes isomorphic-git write fetched branches under their remote names (a mirror); tags it
  // writes itself when it fetches every ref. Not `+refs/*:refs/*`: isomorphic-git maps the peeled
  // `refs/tags/x^{}` entries of the advertisement through it too, and refuses to write those (so a fetch
  // of every ref from a repository with annotated tags failed). Mirrors made with that refspec get this one.
  const config = `[core]\n\trepositoryformatversion = 0\n\tbare = true\n[remote "origin"]\n\turl = ${url}\n\tfetch = +refs/heads/*:refs/heads/*\n`;
  if (!(await exists(join(gitdir, 'HEAD')))) {
    for (const d of ['objects/pack', 'objects/info', 'refs/heads', 'refs/tags']) {
      await mkdir(join(gitdir, d), { recursive: true });
    }
    await atomicWrite(join(gitdir, 'config'), config);
    await atomicWrite(join(gitdir, 'HEAD'), 'ref: refs/heads/main\n');
  } else if ((await readFile(join(gitdir, 'config'), 'utf8').catch(() => '')) !== config) {
    await atomicWrite(join(gitdir, 'config'), config);
  }
  return { url, gitdir, objects: new GitObjects(gitdir), cacheDir: gitdir };
}

async function atomicWrite(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** Points the mirror's `fullref` at `oid` and, when known, its HEAD at `head`. */
export async function recordRefs(
  repo: GitRepo,
  refs: ReadonlyMap<string, string>,
  head?: string,
): Promise<void> {
  for (const [ref, oid] of refs) {
    if (ref.startsWith('refs/')) await atomicWrite(join(repo.gitdir, ref), `${oid}\n`);
  }
  if (head?.startsWith('refs/')) await atomicWrite(join(repo.gitdir, 'HEAD'), `ref: ${head}\n`);
}

/** All refs of a repository on disk: packed-refs, then loose refs (which win), and HEAD's target. */
export async function localRefs(gitdir: string): Promise<RefListing> {
  const refs = new Map<string, string>();
  try {
    for (const line of (await readFile(join(gitdir, 'packed-refs'), 'utf8')).split('\n')) {
      const m = /^([0-9a-f]{40}) (refs\/\S+)$/.exec(line);
      if (m) refs.set(m[2]!, m[1]!);
    }
  } catch {
    // no packed refs
  }
  const walk = async (rel: string): Promise<void> => {
    let names: fs.Dirent[];
    try {
      names = await readdir(join(gitdir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const d of names) {
      const ref = `${rel}/${d.name}`;
      if (d.isDirectory()) await walk(ref);
      else if (d.isFile() && !d.name.endsWith('.lock') && !d.name.endsWith('.tmp')) {
        const text = (await readFile(join(gitdir, ref), 'utf8')).trim();
        if (/^[0-9a-f]{40}$/.test(text)) refs.set(ref, text);
      }
    }
  };
  await walk('refs');
  let head: string | undefined;
  try {
    const text = (await readFile(join(gitdir, 'HEAD'), 'utf8')).trim();
    const m = /^ref:\s*(refs\/\S+)$/.exec(text);
    if (m) head = m[1]!;
    else if (/^[0-9a-f]{40}$/.test(text)) refs.set('HEAD', text);
  } catch {
    // no HEAD
  }
  return { refs, head };
}

/** Whether the mirror was ever fetched shallowly (then histories may be cut). */
export async function isShallow(gitdir: string): Promise<boolean> {
  try {
    return (await readFile(join(gitdir, 'shallow'), 'utf8')).trim().length > 0;
  } catch {
    return false;
  }
}
