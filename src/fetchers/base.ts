/**
 * The fetcher base: the one place with fetch policy (docs/architecture.md,
 * how a fetch flows; snix's `ingest_and_persist`, docs/formats.md §5). Sources
 * (src/fetchers/sources.ts) only turn a spec into a castore node; this file
 * resolves the name, parses the expected hash, answers from the cache when it
 * can, runs the source, checks the hash, computes the fixed-output store path
 * and writes the path info last.
 *
 * - Pinned (an expected hash): the store path is computed before anything
 *   else; when the path info exists the answer is `cached` with no network.
 * - Unpinned (url, tarball, git by ref): the fetch index (fetch-index.ts)
 *   remembers the last result. Within the TTL (default 3600 s, Nix's
 *   `tarball-ttl`) it is reused without a request; after it the request is
 *   conditional and a 304 reuses it. A git fetch by `rev` is immutable and
 *   needs no TTL. A local git repository has no TTL either: its ref is read
 *   again on every fetch, as Nix reads it, and the fetch goes on by that
 *   commit (git.ts `localCommit`). Offline, or when the transfer fails with ERR_HTTP, an
 *   expired entry is still used (Nix: "using cached version").
 * - `cached: true` means no body was downloaded: a pinned hit, an index hit
 *   or a 304.
 * - A hit (pinned, or an index hit) is a read: no lease and no write before
 *   the answer; its use, for gc's least-recently-used order, is written
 *   after it (`coordination.recordUse`). Anything that writes runs under
 *   `coordination.ingest`, so no gc deletes what it reuses or writes.
 * - A hash mismatch is ERR_HASH_MISMATCH and stores nothing under the
 *   expected path (the path info is only written for the actual hash; blobs
 *   already written stay unreferenced until gc).
 * - A hit is only a path info that holds its own address: a content address
 *   that makes its store path (and, for NAR SHA-256, is its NAR hash). For a
 *   pinned fetch that is the expected hash, so `--hash H` never returns a
 *   path recorded with another hash. One that does not hold is damage (or a
 *   poisoned upload from before uploads were checked): never returned, and
 *   fetched again with a warning rather than failed, since the fetch
 *   re-checks what it gets against the path's own hash and so repairs it as
 *   `verify --repair` would.
 * - The path info is written last, for a store path made from the content
 *   just hashed, so it is the truth about that path: a stored one with other
 *   content (ERR_PATH_CONFLICT) is replaced, with a warning.
 * - Concurrent fetches of the same input in one Fetcher share one promise.
 */

import { basename, resolve } from 'node:path';
import type { Cache } from '../cache.js';
import type { Node } from '../castore/nodes.js';
import { FetchCacheError, isFetchCacheError } from '../errors.js';
import type { NixStoreOptions } from '../fs/nix-store.js';
import type { NarSum } from '../nar-render/nar-calc.js';
import type { ContentAddress } from '../nix/content-address.js';
import { type Hash, type HashAlgo, hashEquals, parseAnyPrefixedHash, parseHash, toSRI } from '../nix/hash.js';
import { createHasher } from '../nix/hashing.js';
import {
  type FileIngestionMethod,
  formatStorePath,
  isValidStorePathName,
  makeFixedOutputPath,
  parseStorePathBaseName,
  type StorePath,
  storePathBaseName,
  validateStorePathName,
} from '../nix/store-path.js';
import { contentAddressProblem, type PathInfo } from '../pathinfo/path-info.js';
import { FetchIndex, type FetchIndexEntry, fetchIndexKey } from './fetch-index.js';
import { HttpClient, type HttpClientOptions, type RetryInfo, redactUrl } from './http.js';
import type { Ingested, NotModified, SourceContext } from './source.js';
import type { FetchMetadata, FetchResult, FetchSpec, ProgressEvent } from './types.js';

/** How long an unpinned fetch result is reused before it is revalidated (3600 s, Nix's `tarball-ttl`). */
export const DEFAULT_TTL_SECONDS = 3600;

/** How a `Fetcher` fetches: offline, TTL, HTTP client, progress, hand-off to the Nix store. */
export interface FetcherOptions {
  /** Never use the network: a miss is ERR_OFFLINE. */
  readonly offline?: boolean | undefined;
  /** How long an unpinned result is reused without asking the server (default 3600 s). */
  readonly ttlSeconds?: number | undefined;
  /** The clock, in ms since the epoch (tests inject one). */
  readonly now?: (() => number) | undefined;
  /** A download client, or options for the one the fetcher makes. */
  readonly http?: HttpClient | HttpClientOptions | undefined;
  readonly onProgress?: ((e: ProgressEvent) => void) | undefined;
  /**
   * Also make every fetched path valid in the local Nix store under the same store path
   * (fs/nix-store.ts: `nix-store --add-fixed`), with these options or Nix's defaults (`true`);
   * ERR_NIX_STORE when Nix is not installed or refuses.
   */
  readonly toNixStore?: boolean | NixStoreOptions | undefined;
  /** Told when a transfer is retried or resumed. */
  readonly onRetry?: ((info: RetryInfo) => void) | undefined;
  /**
   * Told what does not stop a fetch but the user should know: an expired result used because the server
   * could not be reached, a damaged path info fetched again, a dirty git working tree.
   */
  readonly onWarning?: ((message: string) => void) | undefined;
}

export interface FetchCallOptions {
  readonly onProgress?: ((e: ProgressEvent) => void) | undefined;
}

/** A lookup in the cache: a hit, or a miss with what the fetch index remembers. */
type Lookup = { readonly hit: FetchResult } | (Miss & { readonly hit?: undefined });

interface Miss {
  readonly entry: FetchIndexEntry | undefined;
  /** The expired result: kept on a 304, or when the transfer fails. */
  readonly stale?: PathInfo | undefined;
  readonly revalidate?: SourceContext['revalidate'];
}

/** `hash mismatch …` with both hashes in SRI, as docs/cli.md promises it. */
function mismatch(what: string, expected: Hash, actual: Hash): FetchCacheError {
  return new FetchCacheError(
    'ERR_HASH_MISMATCH',
    `hash mismatch in ${what}: expected ${toSRI(expected)} got ${toSRI(actual)}`,
    { expected: toSRI(expected), actual: toSRI(actual) },
  );
}

/** Nix's `baseNameOf` on the raw URL: after the last `/`, trailing slashes ignored, query included. */
export function urlBaseName(url: string): string {
  let last = url.length - 1;
  while (last > 0 && url[last] === '/') last--;
  const slash = url.lastIndexOf('/', last);
  return url.slice(slash + 1, last + 1);
}

/** The store path name of a spec: given, or Nix's default for its type. */
export function specName(spec: FetchSpec): string {
  if (spec.name !== undefined) {
    validateStorePathName(spec.name);
    return spec.name;
  }
  switch (spec.type) {
    case 'url': {
      const name = urlBaseName(spec.url);
      if (!isValidStorePathName(name)) {
        throw new FetchCacheError(
          'ERR_BAD_URL',
          `invalid store path name when fetching URL '${redactUrl(spec.url)}'`,
          { path: redactUrl(spec.url), actual: name },
        );
      }
      return name;
    }
    case 'path': {
      const name = basename(resolve(spec.path));
      validateStorePathName(name);
      return name;
    }
    default:
      return 'source';
  }
}

/** Flat for plain files (`url`, `path --flat`), NAR (recursive) for everything else. */
export function specMethod(spec: FetchSpec): FileIngestionMethod {
  if (spec.type === 'url') return spec.executable ? 'nar' : 'flat';
  if (spec.type === 'path') return spec.flat ? 'flat' : 'nar';
  return 'nar';
}

/**
 * The expected hash of a spec: SRI, `algo:…`, or bare (sha256). Trees (tarball,
 * git, path) need SHA-256, as Nix's `narHash`; url and nar take any algorithm.
 */
export function specHash(spec: FetchSpec): Hash | undefined {
  if (spec.hash === undefined) return undefined;
  const h =
    typeof spec.hash !== 'string'
      ? spec.hash
      : /[:-]/.test(spec.hash)
        ? parseAnyPrefixedHash(spec.hash)
        : parseHash(spec.hash, 'sha256');
  if ((spec.type === 'tarball' || spec.type === 'git' || spec.type === 'path') && h.algo !== 'sha256') {
    throw new FetchCacheError('ERR_BAD_HASH', `the hash of a ${spec.type} must use SHA-256, not ${h.algo}`, {
      expected: 'sha256',
      actual: h.algo,
    });
  }
  return h;
}

function specLabel(spec: FetchSpec): string {
  return spec.type === 'path' ? spec.path : redactUrl(spec.url);
}

/** Everything that makes two fetches the same input. */
function flightKey(spec: FetchSpec, name: string, expected: Hash | undefined): string {
  const { hash: _hash, name: _name, ...rest } = spec;
  return JSON.stringify([name, expected === undefined ? null : toSRI(expected), rest]);
}

/**
 * Fetches sources into a cache (`fetch(spec)`): computes the store path Nix computes, answers pinned
 * fetches from the cache without network, and writes the path info last.
 */
export class Fetcher {
  readonly cache: Cache;
  readonly http: HttpClient;
  private readonly index: FetchIndex;
  private readonly options: FetcherOptions;
  private readonly inFlight = new Map<string, Promise<FetchResult>>();

  constructor(cache: Cache, options: FetcherOptions = {}) {
    this.cache = cache;
    this.options = options;
    this.http =
      options.http instanceof HttpClient
        ? options.http
        : new HttpClient({ ...options.http, offline: options.offline === true });
    this.index = new FetchIndex(cache.fetchIndex);
  }

  private get offline(): boolean {
    return this.options.offline === true || this.http.offline;
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Fetch `spec` into the store, from the cache when possible. */
  fetch(spec: FetchSpec, call: FetchCallOptions = {}): Promise<FetchResult> {
    let name: string;
    let expected: Hash | undefined;
    try {
      name = specName(spec);
      expected = specHash(spec);
    } catch (e) {
      return Promise.reject(e);
    }
    const key = flightKey(spec, name, expected);
    const running = this.inFlight.get(key);
    if (running) return running;
    const p = this.run(spec, name, expected, call)
      .then(async (result) => {
        this.cache.coordination.recordUse(result.storePath.digest); // for gc --max-size, written after the answer
        const toNix = this.options.toNixStore;
        if (toNix !== undefined && toNix !== false) {
          const { copyToNixStore } = await import('../fs/nix-store.js');
          await copyToNixStore(result.pathInfo, this.cache, toNix === true ? {} : toNix);
        }
        return result;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  /** Fetch and persist `spec` as `name`, skipping every cache lookup (snix's `ingest_and_persist`). */
  async ingestAndPersist(name: string, spec: FetchSpec, call: FetchCallOptions = {}): Promise<FetchResult> {
    validateStorePathName(name);
    const expected = specHash(spec);
    return this.cache.coordination.ingest(async () => {
      const { sourceFor } = await import('./sources.js');
      const source = await sourceFor(spec);
      const out = await source.ingest(spec, this.context(spec, expected, undefined, call));
      if (out.notModified) throw new TypeError('a source answered "not modified" to an unconditional fetch');
      return this.persist(name, spec, expected, out);
    });
  }

  private async run(
    asked: FetchSpec,
    name: string,
    expected: Hash | undefined,
    call: FetchCallOptions,
  ): Promise<FetchResult> {
    let spec = asked;
    if (spec.type === 'git' && spec.rev === undefined && !/^https?:\/\//i.test(spec.url)) {
      // A local repository is read again every time (no TTL), and its tree cached by the commit.
      const { localCommit } = await import('./git.js');
      const rev = await localCommit(spec, this.options.onWarning);
      if (rev !== undefined) spec = { ...spec, rev };
    }
    if (spec.type === 'nar' && expected === undefined) {
      throw new FetchCacheError(
        'ERR_BAD_HASH',
        `fetching the NAR '${redactUrl(spec.url)}' needs an expected hash`,
      );
    }
    const key = fetchIndexKey(spec, name);
    // A hit is a read: no lease, and no write on the way to the answer.
    const first = await this.lookup(spec, name, expected, key);
    if (first.hit !== undefined) return first.hit;
    // A miss writes, under an ingest lease; looked up again under it, so that a stale result a 304 or a
    // failed transfer falls back to cannot be deleted by a gc meanwhile.
    return this.cache.coordination.ingest(async () => {
      const found = await this.lookup(spec, name, expected, key, { quiet: true });
      return found.hit ?? this.ingest(spec, name, expected, call, key, found);
    });
  }

  /** What the cache holds for `spec`: a result to answer with, else what to revalidate or fall back to. */
  private async lookup(
    spec: FetchSpec,
    name: string,
    expected: Hash | undefined,
    key: string | undefined,
    { quiet = false } = {},
  ): Promise<Lookup> {
    const entry = key === undefined ? undefined : await this.index.get(key);
    if (expected !== undefined) {
      const path = makeFixedOutputPath(
        { name, method: specMethod(spec), hash: expected },
        this.cache.storeDir,
      );
      const info = await this.stored(path, quiet);
      if (info) {
        const metadata = entry?.storePath === storePathBaseName(path) ? entry.metadata : {};
        return { hit: this.result(info, metadata, true) };
      }
      return { entry };
    }
    if (entry === undefined) return { entry };
    const info = await this.stored(parseStorePathBaseName(entry.storePath), quiet);
    if (info === undefined) return { entry };
    const immutable = spec.type === 'git' && spec.rev !== undefined;
    const ttl = (this.options.ttlSeconds ?? DEFAULT_TTL_SECONDS) * 1000;
    if (immutable || this.offline || this.now() - entry.fetchedAt < ttl) {
      return { hit: this.result(info, entry.metadata, true) };
    }
    const revalidate =
      entry.etag === undefined && entry.lastModifiedHeader === undefined
        ? undefined
        : {
            ...(entry.etag === undefined ? {} : { etag: entry.etag }),
            ...(entry.lastModifiedHeader === undefined ? {} : { lastModified: entry.lastModifiedHeader }),
          };
    return { entry, stale: info, revalidate };
  }

  /** Run the source and persist what it gives (or keep the stale result on a 304 or a failed transfer). */
  private async ingest(
    spec: FetchSpec,
    name: string,
    expected: Hash | undefined,
    call: FetchCallOptions,
    key: string | undefined,
    { entry, stale, revalidate }: Miss,
  ): Promise<FetchResult> {
    // The sources (and the decoders, tar and git code they load) load only when one runs: a hit needs none.
    const { sourceFor } = await import('./sources.js');
    const source = await sourceFor(spec);
    let out: Ingested | NotModified;
    try {
      out = await source.ingest(spec, this.context(spec, expected, revalidate, call));
    } catch (e) {
      // Like Nix's downloadFile: a failed transfer falls back to the expired result, with a warning.
      if (
        stale === undefined ||
        entry === undefined ||
        !(e instanceof FetchCacheError) ||
        e.code !== 'ERR_HTTP'
      ) {
        throw e;
      }
      this.options.onWarning?.(`${e.message}; using cached version`);
      return this.result(stale, entry.metadata, true);
    }
    if (out.notModified) {
      if (stale === undefined || entry === undefined || key === undefined) {
        throw new TypeError('a source answered "not modified" to an unconditional fetch');
      }
      await this.index.put(key, { ...entry, fetchedAt: this.now() });
      return this.result(stale, entry.metadata, true);
    }
    const result = await this.persist(name, spec, expected, out);
    if (key !== undefined) {
      const { etag, lastModifiedHeader } = result.metadata;
      const record: FetchIndexEntry = {
        storePath: storePathBaseName(result.storePath),
        fetchedAt: this.now(),
        etag,
        lastModifiedHeader,
        metadata: result.metadata,
      };
      await this.index.put(key, record);
    }
    return result;
  }

  private context(
    spec: FetchSpec,
    expected: Hash | undefined,
    revalidate: SourceContext['revalidate'],
    call: FetchCallOptions,
  ): SourceContext {
    const label = specLabel(spec);
    const start = Date.now();
    const emit = (e: ProgressEvent) => {
      this.options.onProgress?.(e);
      call.onProgress?.(e);
    };
    return {
      cache: this.cache,
      http: this.http,
      offline: this.offline,
      expected,
      algo: expected?.algo ?? 'sha256',
      ...(revalidate === undefined ? {} : { revalidate }),
      progress(bytes, total, done = false) {
        const seconds = (Date.now() - start) / 1000;
        emit({ label, bytes, total, rate: seconds > 0 ? bytes / seconds : 0, done });
      },
      retry: (info) => this.options.onRetry?.(info),
      warn: (message) => this.options.onWarning?.(message),
    };
  }

  /**
   * The path info of `path` when the cache has it (same name, not just the same digest) and it holds its
   * own address (see the header); one that does not is reported (unless `quiet`: the look-up repeated
   * under the ingest lease) and treated as absent.
   */
  private async stored(path: StorePath, quiet = false): Promise<PathInfo | undefined> {
    const info = await this.cache.pathInfos.get(path.digest);
    if (info === undefined || info.storePath.name !== path.name) return undefined;
    const problem =
      info.ca === undefined ? 'it has no content address' : contentAddressProblem(info, this.cache.storeDir);
    if (problem === undefined) return info;
    if (!quiet)
      this.options.onWarning?.(
        `the path info of ${formatStorePath(path, this.cache.storeDir)} is damaged (${problem}); fetching it again`,
      );
    return undefined;
  }

  /** Hash check, store path, path info last. */
  private async persist(
    name: string,
    spec: FetchSpec,
    expected: Hash | undefined,
    out: Ingested,
  ): Promise<FetchResult> {
    const method = specMethod(spec);
    const algo: HashAlgo = expected?.algo ?? 'sha256';
    let sum: NarSum;
    if (out.narSum !== undefined) {
      sum = out.narSum;
      await this.cache.narCalc.remember(out.node, sum);
    } else {
      sum = await this.cache.narCalc.calculate(out.node);
    }
    let actual: Hash;
    if (method === 'flat') {
      if (out.flatHash?.algo !== algo)
        throw new TypeError(`the ${spec.type} source gave no flat ${algo} hash`);
      actual = out.flatHash;
    } else {
      actual =
        algo === 'sha256' ? { algo, digest: sum.narSha256 } : await narHashWith(out.node, algo, this.cache);
    }
    if (expected !== undefined && !hashEquals(expected, actual)) {
      const what =
        spec.type === 'path' ? `path '${spec.path}'` : `file downloaded from '${redactUrl(spec.url)}'`;
      throw mismatch(what, expected, actual);
    }
    const ca: ContentAddress = { method, hash: actual };
    const storePath = makeFixedOutputPath({ name, method, hash: actual }, this.cache.storeDir);
    const fetched: PathInfo = {
      storePath,
      node: out.node,
      references: [],
      narSha256: sum.narSha256,
      narSize: sum.narSize,
      signatures: [],
      ca,
    };
    let info: PathInfo;
    try {
      info = await this.cache.pathInfos.put(fetched);
    } catch (e) {
      if (!isFetchCacheError(e, 'ERR_PATH_CONFLICT')) throw e;
      this.options.onWarning?.(`${e.message}; replaced by what was fetched for it`);
      info = await this.cache.pathInfos.put(fetched, { replace: true });
    }
    return this.result(info, out.metadata, false);
  }

  private result(info: PathInfo, metadata: FetchMetadata, cached: boolean): FetchResult {
    const flat = info.ca?.method === 'flat' ? info.ca.hash : undefined;
    return {
      path: formatStorePath(info.storePath, this.cache.storeDir),
      storePath: info.storePath,
      pathInfo: info,
      node: info.node,
      narHash: { algo: 'sha256', digest: info.narSha256 },
      ...(flat === undefined ? {} : { hash: flat }),
      metadata,
      cached,
    };
  }
}

/** The NAR hash of a node with an algorithm other than SHA-256 (rendered again; rare). */
async function narHashWith(node: Node, algo: HashAlgo, cache: Cache): Promise<Hash> {
  const { renderNar } = await import('../nar-render/render.js');
  const hasher = createHasher(algo);
  for await (const chunk of renderNar(node, cache)) hasher.update(chunk);
  return { algo, digest: hasher.digest() };
}

/** One-shot `new Fetcher(cache, options).fetch(spec)`. */
export async function fetchSpec(
  cache: Cache,
  spec: FetchSpec,
  options: FetcherOptions = {},
): Promise<FetchResult> {
  return new Fetcher(cache, options).fetch(spec);
}

/** snix's `ingest_and_persist(name, fetch)` over a fresh Fetcher. */
export async function ingestAndPersist(
  cache: Cache,
  name: string,
  spec: FetchSpec,
  options: FetcherOptions = {},
): Promise<FetchResult> {
  return new Fetcher(cache, options).ingestAndPersist(name, spec);
}
