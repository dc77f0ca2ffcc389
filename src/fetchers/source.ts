/**
 * The one interface a source type implements to plug into the fetcher base
 * (src/fetchers/base.ts): turn a spec into a castore root node, plus whatever
 * hashes it computed on the way and the source's metadata. A source never
 * computes store paths, checks expected hashes, writes path infos or consults
 * caches — the base owns that policy (docs/architecture.md; npm/pacote's base
 * class + thin subclass per source). Sources stay small: bytes in, entries
 * into `ingestEntries()` (or `ingestNar`), a node out.
 */

import type { Cache } from '../cache.js';
import type { Node } from '../castore/nodes.js';
import type { NarSum } from '../nar-render/nar-calc.js';
import type { Hash, HashAlgo } from '../nix/hash.js';
import type { Download, HttpClient, RetryInfo } from './http.js';
import type { FetchMetadata, FetchSpec } from './types.js';

export interface SourceContext {
  /** Blobs, directories and the NAR calculator to ingest into. */
  readonly cache: Cache;
  /** The download client (offline mode is already applied to it). */
  readonly http: HttpClient;
  readonly offline: boolean;
  /** The parsed expected hash, when the spec has one (sources may use its algorithm). */
  readonly expected: Hash | undefined;
  /**
   * The algorithm of the hash the base will check: the expected hash's, else
   * sha256. A `url` source hashes the file's bytes with it.
   */
  readonly algo: HashAlgo;
  /** Validators of an earlier transfer of the same spec: ask conditionally, a 304 is `notModified`. */
  readonly revalidate?: { readonly etag?: string | undefined; readonly lastModified?: string | undefined };
  /** Report transfer progress: bytes so far and the total when known. */
  progress(bytes: number, total: number | undefined, done?: boolean): void;
  /** Report a retried / resumed transfer. */
  retry(info: RetryInfo): void;
  /** Tell the user something about the source that does not stop the fetch (a dirty git tree). */
  warn(message: string): void;
}

export interface Ingested {
  readonly notModified?: false;
  readonly node: Node;
  /** NAR sha256/size when the source computed them anyway (a NAR stream); else the base renders. */
  readonly narSum?: NarSum | undefined;
  /** The flat hash of a single file with `SourceContext.algo` (url fetches). */
  readonly flatHash?: Hash | undefined;
  readonly metadata: FetchMetadata;
}

/** The server said the content did not change since `revalidate` (HTTP 304). */
export interface NotModified {
  readonly notModified: true;
  readonly metadata: FetchMetadata;
}

export interface Source<S extends FetchSpec> {
  /**
   * Fetch `spec` and ingest it into `ctx.cache`. Must not write path infos.
   * Content already written when it fails is unreferenced (gc takes it).
   */
  ingest(spec: S, ctx: SourceContext): Promise<Ingested | NotModified>;
}

/**
 * Download a spec's URL (with its mirrors) the way every URL source does:
 * conditionally when the base has validators, reporting progress and retries.
 */
export function download(
  ctx: SourceContext,
  spec: { readonly url: string; readonly mirrors?: readonly string[] | undefined },
): Promise<Download> {
  return ctx.http.download({
    url: spec.url,
    mirrors: spec.mirrors,
    etag: ctx.revalidate?.etag,
    lastModified: ctx.revalidate?.lastModified,
    onProgress: (p) => ctx.progress(p.bytes, p.total, p.done),
    onRetry: (r) => ctx.retry(r),
  });
}
