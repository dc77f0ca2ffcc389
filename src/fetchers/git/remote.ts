/**
 * The smart-HTTP side, through isomorphic-git: listing a remote's refs
 * (protocol v1 advertisement, which carries HEAD's symref target and peeled
 * tags) and fetching into a mirror. Offline, no request is made: the HTTP
 * client is wrapped so that even a stray call fails with ERR_OFFLINE before
 * any socket opens. Transport failures become ERR_HTTP; protocol-level ones
 * ERR_GIT.
 */

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname } from 'node:path';
import type * as IsomorphicGit from 'isomorphic-git';
import type { HttpClient } from 'isomorphic-git';
import { FetchCacheError, isFetchCacheError } from '../../errors.js';
import { type CommitSink, indexPack } from './index-pack.js';
import type { PackedObject } from './pack.js';
import type { RefListing } from './refs.js';
import type { GitRepo } from './repo-cache.js';

let isoGit: typeof IsomorphicGit | undefined;

/**
 * isomorphic-git, required on first use: its package resolves to CommonJS on
 * Node, and an ESM import of it would have Node scan its 600 KB for export
 * names (about 100 ms) on every start that loads the git source at all.
 */
function git(): typeof IsomorphicGit {
  isoGit ??= createRequire(import.meta.url)('isomorphic-git') as typeof IsomorphicGit;
  return isoGit;
}

/** The client to use: the caller's, else isomorphic-git's node client (loaded on first use). */
export function guardedHttp(offline: boolean, url: string, http: HttpClient | undefined): HttpClient {
  return {
    async request(req) {
      if (offline) {
        throw new FetchCacheError('ERR_OFFLINE', `offline: cannot fetch '${url}' (not in the cache)`, {
          path: url,
        });
      }
      const client = http ?? (await import('isomorphic-git/http/node')).default;
      return client.request(req);
    },
  };
}

function transportError(url: string, e: unknown): FetchCacheError {
  if (isFetchCacheError(e)) return e;
  const err = e as {
    code?: string;
    message?: string;
    data?: { statusCode?: number; statusMessage?: string };
  };
  if (err.code === 'HttpError') {
    const status = err.data?.statusCode;
    return new FetchCacheError(
      'ERR_HTTP',
      `HTTP ${status ?? '?'} ${err.data?.statusMessage ?? ''} from '${url}'`.trim(),
      {
        path: url,
        actual: String(status ?? ''),
        cause: e,
      },
    );
  }
  if (typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code)) {
    return new FetchCacheError('ERR_HTTP', `cannot reach '${url}': ${err.message ?? err.code}`, {
      path: url,
      cause: e,
    });
  }
  return new FetchCacheError('ERR_GIT', `git fetch from '${url}' failed: ${err.message ?? String(e)}`, {
    path: url,
    cause: e,
  });
}

export interface RemoteListing extends RefListing {
  /** Peeled commit of each annotated tag ref. */
  readonly peeled: ReadonlyMap<string, string>;
}

export async function listRemote(url: string, http: HttpClient): Promise<RemoteListing> {
  try {
    const info = await git().getRemoteInfo2({ http, url, protocolVersion: 1 });
    const refs = new Map<string, string>();
    const peeled = new Map<string, string>();
    let head: string | undefined;
    for (const r of info.refs ?? []) {
      refs.set(r.ref, r.oid);
      if (r.peeled) peeled.set(r.ref, r.peeled);
      if (r.ref === 'HEAD' && r.target) head = r.target;
    }
    return { refs, head, peeled };
  } catch (e) {
    throw transportError(url, e);
  }
}

export interface FetchOptions {
  /** Fetch only `remoteRef` (and what it needs); else every branch and tag. */
  readonly remoteRef?: string;
  /** A local ref whose commit is sent as a `have` (incremental fetch). */
  readonly haveRef?: string;
  /** Commits of history to fetch (1 = shallow); undefined = all. */
  readonly depth?: number;
}

/** Thrown by the file system below once the received pack is written and indexed. */
class PackIndexed extends Error {}

/**
 * node:fs for isomorphic-git, except that writing a received pack
 * (`objects/pack/pack-<sha>.pack`, the last thing its fetch does but index
 * it) also writes the pack's `.idx` with our own indexer (index-pack.ts), then
 * throws PackIndexed so that isomorphic-git's much slower indexing of the same
 * pack never runs. Refs were updated before the pack arrived, so nothing of
 * the fetch is lost; the `.idx` is renamed into place last, and a pack
 * without one is invisible to every reader.
 */
function indexingFs(external: (oid: string) => PackedObject | undefined, onCommit: CommitSink): typeof fs {
  // isomorphic-git retries a failed write once (after a mkdir): the retry only throws again.
  const indexed = new Set<string>();
  const writeFile = async (path: fs.PathLike, data: unknown, options?: unknown): Promise<void> => {
    const p = String(path);
    if (!p.endsWith('.pack') || basename(dirname(p)) !== 'pack' || !Buffer.isBuffer(data)) {
      return fs.promises.writeFile(path, data as Buffer, options as fs.WriteFileOptions);
    }
    if (indexed.has(p)) throw new PackIndexed();
    indexed.add(p);
    await fs.promises.writeFile(p, data);
    const idxFile = `${p.slice(0, -'.pack'.length)}.idx`;
    const tmp = `${idxFile}.tmp-${process.pid}`;
    await fs.promises.writeFile(tmp, indexPack(data, external, onCommit));
    await fs.promises.rename(tmp, idxFile);
    throw new PackIndexed();
  };
  return { ...fs, promises: { ...fs.promises, writeFile } } as typeof fs;
}

export async function fetchInto(repo: GitRepo, http: HttpClient, options: FetchOptions): Promise<void> {
  try {
    await git().fetch({
      fs: indexingFs(
        (oid) => repo.objects.readRaw(oid),
        (oid, data) => repo.objects.learnCommit(oid, data),
      ),
      http,
      gitdir: repo.gitdir,
      url: repo.url,
      remote: 'origin',
      ...(options.remoteRef !== undefined ? { remoteRef: options.remoteRef } : {}),
      ...(options.haveRef !== undefined ? { ref: options.haveRef } : { ref: 'HEAD' }),
      ...(options.depth !== undefined ? { depth: options.depth } : {}),
      singleBranch: options.remoteRef !== undefined,
      tags: options.remoteRef === undefined,
      cache: {},
    });
  } catch (e) {
    if (e instanceof PackIndexed) return;
    throw transportError(repo.url, e);
  }
}
