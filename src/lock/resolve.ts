/**
 * `resolvePin()`: a manifest pin → its lockfile entry. Resolution settles the
 * mutable part first (a branch head or the newest matching tag, from the
 * remote's ref listing; a github pin's archive URL from the rev), then fetches
 * through the fetcher base, which computes the NAR (or flat) hash and the
 * store path. Trees are named `source` unless the pin says otherwise, so the
 * store path is the one `builtins.fetchTarball` / `builtins.fetchGit` give.
 *
 * A pin that is already locked from the same manifest entry is fetched by
 * its locked coordinates (rev, hash): a pinned fetch, so a path in the cache
 * that holds the locked hash answers with no network, and the entry comes
 * back as it is or the fetch fails with ERR_HASH_MISMATCH.
 */

import { basename, dirname } from 'node:path';
import type { Cache } from '../cache.js';
import { FetchCacheError } from '../errors.js';
import { Fetcher, type FetcherOptions } from '../fetchers/base.js';
import { putPinRecord } from '../fetchers/fetch-index.js';
import { resolveRef } from '../fetchers/git/refs.js';
import type { FetchResult, FetchSpec, GitSpec } from '../fetchers/types.js';
import { toSRI } from '../nix/hash.js';
import { parseStorePath } from '../nix/store-path.js';
import { hashKind, type LockedPin } from './lockfile.js';
import {
  effectivePin,
  type GithubHosts,
  type GithubPin,
  type Pin,
  pinDigest,
  type RevSelector,
} from './manifest.js';
import type { RefList } from './remote-refs.js';
import { newestTag } from './tags.js';

/** How `resolvePin` resolves: the cache to fetch into, offline, a shared fetcher, GitHub hosts. */
export interface ResolveOptions {
  readonly cache: Cache;
  readonly offline?: boolean | undefined;
  /** A fetcher to share between pins (one is made from `fetcher` options otherwise). */
  readonly fetcher?: Fetcher | FetcherOptions | undefined;
  /** The pin's current lockfile entry, if any. */
  readonly locked?: LockedPin | undefined;
  /** Override the github archive / ref-listing hosts. */
  readonly github?: GithubHosts | undefined;
  /**
   * The lockfile the entry is for (an absolute path), recorded with the pin's name beside the store path
   * it resolved to, for the server's index page (fetchers/fetch-index.ts).
   */
  readonly lockfile?: string | undefined;
}

/** `https://github.com/<owner>/<repo>/archive/<rev>.tar.gz` on the pin's archive host. */
export function githubArchiveUrl(base: string, owner: string, repo: string, rev: string): string {
  return `${base.replace(/\/+$/, '')}/${owner}/${repo}/archive/${rev}.tar.gz`;
}

export function githubGitUrl(gitBase: string, owner: string, repo: string): string {
  return `${gitBase.replace(/\/+$/, '')}/${owner}/${repo}.git`;
}

/** Loaded on first use: listing refs pulls in the git transport. */
async function listRefs(url: string, ctx: { cache: Cache; offline: boolean }): Promise<RefList> {
  return (await import('./remote-refs.js')).listRefs(url, ctx);
}

function fetcherOf(opts: ResolveOptions): Fetcher {
  if (opts.fetcher instanceof Fetcher) return opts.fetcher;
  return new Fetcher(opts.cache, { ...opts.fetcher, offline: opts.offline === true });
}

/** The fetch spec that reproduces a lockfile entry (its hash as the expected hash). */
export function lockedSpec(locked: LockedPin): FetchSpec {
  const name = parseStorePath(locked.storePath, dirname(locked.storePath)).name;
  const narHash = locked.narHash;
  switch (locked.type) {
    case 'url':
      if (locked.unpack === true) return { type: 'tarball', url: locked.url, name, hash: narHash };
      return {
        type: 'url',
        url: locked.url,
        name,
        hash: hashKind(locked) === 'hash' ? locked.hash : narHash,
        ...(locked.executable === true ? { executable: true } : {}),
      };
    case 'tarball':
    case 'github':
      return { type: 'tarball', url: locked.url, name, hash: narHash };
    case 'git':
      return {
        type: 'git',
        url: locked.url,
        name,
        hash: narHash,
        ...(locked.rev === undefined ? {} : { rev: locked.rev }),
        ...(locked.ref === undefined ? {} : { ref: locked.ref }),
        ...(locked.submodules === true ? { submodules: true } : {}),
        ...(locked.shallow === true ? { shallow: true } : {}),
        ...(locked.exportIgnore === undefined ? {} : { exportIgnore: locked.exportIgnore }),
      };
  }
}

/** The commit a git/github selector names on a remote: its rev, newest matching tag, or ref (default HEAD). */
async function selectCommit(
  url: string,
  sel: RevSelector,
  list: () => Promise<RefList>,
): Promise<{ rev: string; ref?: string }> {
  if (sel.rev !== undefined) return { rev: sel.rev };
  const refs = await list();
  if (sel.tag !== undefined) {
    const chosen = newestTag(refs.refs.keys(), {
      range: sel.tag,
      prefix: sel.prefix,
      prereleases: sel.prereleases,
    });
    if (chosen === undefined) {
      throw new FetchCacheError(
        'ERR_GIT',
        `no tag of '${url}' matches '${sel.tag}'${sel.prefix ? ` with prefix '${sel.prefix}'` : ''}`,
        { path: url, expected: sel.tag },
      );
    }
    const ref = `refs/tags/${chosen.tag}`;
    return { rev: await refs.commitOf(ref), ref };
  }
  const found = resolveRef(refs, sel.ref);
  if (found === undefined) {
    throw new FetchCacheError('ERR_GIT', `cannot find git ref '${sel.ref ?? 'HEAD'}' in '${url}'`, {
      path: url,
      actual: sel.ref ?? 'HEAD',
    });
  }
  return { rev: await refs.commitOf(found.fullref), ref: found.fullref };
}

function entryOf(pin: Pin, result: FetchResult, digest: string, extra: Partial<LockedPin>): LockedPin {
  const flat = pin.type === 'url' && pin.unpack !== true && pin.executable !== true;
  if (flat && result.hash === undefined) throw new TypeError('a flat url fetch gave no flat hash');
  return {
    type: pin.type,
    url: extra.url ?? (pin.type === 'github' ? '' : pin.url),
    ...extra,
    ...(flat ? { hash: toSRI(result.hash!) } : { narHash: toSRI(result.narHash) }),
    storePath: result.path,
    manifestDigest: digest,
  };
}

async function resolveFresh(
  pin: Pin,
  opts: ResolveOptions,
  fetcher: Fetcher,
  digest: string,
): Promise<LockedPin> {
  const { cache } = opts;
  const offline = opts.offline === true;
  const name = pin.name;
  switch (pin.type) {
    case 'url':
    case 'tarball': {
      const common = { url: pin.url, mirrors: pin.mirrors, name, hash: pin.hash };
      const tree = pin.type === 'tarball' || pin.unpack === true;
      const spec: FetchSpec = tree
        ? { type: 'tarball', ...common }
        : { type: 'url', ...common, ...(pin.executable ? { executable: true } : {}) };
      const r = await fetcher.fetch(spec);
      return entryOf(pin, r, digest, {
        ...(pin.type === 'url' && pin.executable ? { executable: true } : {}),
        ...(pin.type === 'url' && pin.unpack ? { unpack: true } : {}),
        ...(tree && r.metadata.lastModified !== undefined ? { lastModified: r.metadata.lastModified } : {}),
      });
    }
    case 'git': {
      let ref = pin.ref;
      let rev = pin.rev;
      if (pin.tag !== undefined) {
        const chosen = await selectCommit(pin.url, pin, () => listRefs(pin.url, { cache, offline }));
        ref = chosen.ref;
        rev = chosen.rev;
      }
      const spec: GitSpec = {
        type: 'git',
        url: pin.url,
        name,
        ref,
        rev,
        ...(pin.submodules ? { submodules: true } : {}),
        ...(pin.shallow ? { shallow: true } : {}),
        ...(pin.exportIgnore === undefined ? {} : { exportIgnore: pin.exportIgnore }),
      };
      const r = await fetcher.fetch(spec);
      const m = r.metadata;
      if (m.rev === undefined) throw new TypeError('a git fetch gave no rev');
      return entryOf(pin, r, digest, {
        ...((m.ref ?? ref) === undefined ? {} : { ref: m.ref ?? ref }),
        rev: m.rev,
        ...(m.revCount === undefined ? {} : { revCount: m.revCount }),
        ...(m.lastModified === undefined ? {} : { lastModified: m.lastModified }),
        ...(pin.submodules ? { submodules: true } : {}),
        ...(pin.shallow ? { shallow: true } : {}),
        ...(pin.exportIgnore === undefined ? {} : { exportIgnore: pin.exportIgnore }),
      });
    }
    case 'github':
      return resolveGithub(pin, opts, fetcher, digest);
  }
}

async function resolveGithub(pin: GithubPin, opts: ResolveOptions, fetcher: Fetcher, digest: string) {
  const gitUrl = githubGitUrl(pin.gitBase!, pin.owner, pin.repo);
  const { rev, ref } = await selectCommit(gitUrl, pin, () =>
    listRefs(gitUrl, { cache: opts.cache, offline: opts.offline === true }),
  );
  const url = githubArchiveUrl(pin.base!, pin.owner, pin.repo, rev);
  const r = await fetcher.fetch({ type: 'tarball', url, name: pin.name });
  return entryOf(pin, r, digest, {
    url,
    owner: pin.owner,
    repo: pin.repo,
    ...(ref === undefined ? {} : { ref }),
    rev,
    ...(r.metadata.lastModified === undefined ? {} : { lastModified: r.metadata.lastModified }),
  });
}

/**
 * Resolve `pin` to its lockfile entry. With `locked` from the same manifest
 * entry, the locked entry is kept once a fetch by its locked rev and hash
 * (answered by the cache when it holds that hash) gives its store path.
 */
export async function resolvePin(pin: Pin, opts: ResolveOptions): Promise<LockedPin> {
  const eff = effectivePin(pin, opts.github);
  const digest = pinDigest(eff);
  const locked = opts.locked;
  let entry: LockedPin;
  if (locked !== undefined && locked.manifestDigest === digest && locked.type === eff.type) {
    const r = await fetcherOf(opts).fetch(lockedSpec(locked));
    const got = r.path;
    if (got !== locked.storePath) {
      throw new FetchCacheError(
        'ERR_HASH_MISMATCH',
        `locked store path ${locked.storePath}, fetched ${got}`,
        {
          expected: locked.storePath,
          actual: got,
        },
      );
    }
    entry = locked;
  } else entry = await resolveFresh(eff, opts, fetcherOf(opts), digest);
  const name = pin.pinName ?? pin.pin;
  if (name !== undefined) {
    await putPinRecord(opts.cache.fetchIndex, {
      storePath: basename(entry.storePath),
      pin: name,
      ...(opts.lockfile === undefined ? {} : { lockfile: opts.lockfile }),
      recordedAt: Date.now(),
    });
  }
  return entry;
}
