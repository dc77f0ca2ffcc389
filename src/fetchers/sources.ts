/**
 * The registry of source types: which `Source` ingests which spec type. The
 * url, nar and path sources are files of their own; tarball and git are thin
 * adapters here over `ingestTarball()` (tarball.ts) and `ingestGit()` (git.ts),
 * which know nothing about the fetcher base. Those two load on first use
 * (isomorphic-git, tar-stream, yauzl are sizeable), so a fetch that is
 * answered from the cache starts faster.
 */

import { narSource } from './nar.js';
import { pathSource } from './path.js';
import { download, type Source } from './source.js';
import type { FetchSpec, GitSpec, TarballSpec } from './types.js';
import { urlSource } from './url.js';

/** `builtins.fetchTarball`: download (with mirrors), unpack into castore; `lastModified` from the members. */
export const tarballSource: Source<TarballSpec> = {
  async ingest(spec, ctx) {
    const dl = await download(ctx, spec);
    if (dl.notModified) return { notModified: true, metadata: { url: dl.url } };
    const { ingestTarball } = await import('./tarball.js');
    const { node, lastModified } = await ingestTarball(dl.body, ctx.cache, { root: ctx.cache.root });
    return {
      node,
      metadata: {
        url: dl.url,
        lastModified,
        ...(dl.etag === undefined ? {} : { etag: dl.etag }),
        ...(dl.lastModified === undefined ? {} : { lastModifiedHeader: dl.lastModified }),
      },
    };
  },
};

/** `builtins.fetchGit`: git mirrors live under the cache root; offline is honoured by ingestGit itself. */
export const gitSource: Source<GitSpec> = {
  async ingest(spec, ctx) {
    const { ingestGit } = await import('./git.js');
    const { node, metadata } = await ingestGit(spec, {
      services: ctx.cache,
      cacheRoot: ctx.cache.root,
      offline: ctx.offline,
      onWarning: (message) => ctx.warn(message),
    });
    return { node, metadata };
  },
};

type SourceOf<T extends FetchSpec['type']> = Source<Extract<FetchSpec, { type: T }>>;

const SOURCES: { readonly [T in FetchSpec['type']]: SourceOf<T> } = {
  url: urlSource,
  tarball: tarballSource,
  git: gitSource,
  nar: narSource,
  path: pathSource,
};

export function sourceFor<S extends FetchSpec>(spec: S): Source<S> {
  const source = SOURCES[spec.type] as Source<S> | undefined;
  if (source === undefined) throw new TypeError(`no fetcher for source type '${String(spec.type)}'`);
  return source;
}
