/**
 * The registry of source types: which `Source` ingests which spec type. The
 * url, nar and path sources are files of their own; tarball and git are thin
 * adapters here over `ingestTarball()` (tarball.ts) and `ingestGit()` (git.ts),
 * which know nothing about the fetcher base. Every source loads on first use
 * (isomorphic-git, the tar reader, the NAR parser, the local-file walker): a fetch
 * loads the one it runs, and one answered from the cache none.
 */

import { download, type Source } from './source.js';
import type { FetchSpec, GitSpec, TarballSpec } from './types.js';

/** `builtins.fetchTarball`: download (with mirrors), unpack into castore; `lastModified` from the members. */
export const tarballSource: Source<TarballSpec> = {
  async ingest(spec, ctx) {
    const dl = await download(ctx, spec);
    if (dl.notModified) return { notModified: true, metadata: { url: dl.url } };
    const { ingestTarball } = await import('./tarball.js');
    const { node, narSum, lastModified } = await ingestTarball(dl.body, ctx.cache, { root: ctx.cache.root });
    return {
      node,
      narSum,
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

const SOURCES: { readonly [T in FetchSpec['type']]: () => Promise<SourceOf<T>> } = {
  url: async () => (await import('./url.js')).urlSource,
  tarball: async () => tarballSource,
  git: async () => gitSource,
  nar: async () => (await import('./nar.js')).narSource,
  path: async () => (await import('./path.js')).pathSource,
};

/** The source of `spec`'s type, loaded. */
export async function sourceFor<S extends FetchSpec>(spec: S): Promise<Source<S>> {
  const load = SOURCES[spec.type] as (() => Promise<Source<S>>) | undefined;
  if (load === undefined) throw new TypeError(`no fetcher for source type '${String(spec.type)}'`);
  return load();
}
