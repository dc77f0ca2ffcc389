/**
 * What a fetch is asked for and what it gives back: the specs of every
 * source type and the result shape shared by the library, the CLI and the pin
 * resolver. Semantics follow Nix's builtins (docs/formats.md §5) and snix's
 * `Fetch` (`glue/src/fetchers/mod.rs`).
 */

import type { Node } from '../castore/nodes.js';
import type { Hash } from '../nix/hash.js';
import type { StorePath } from '../nix/store-path.js';
import type { PathInfo } from '../pathinfo/path-info.js';

interface SpecBase {
  /** Store path name; default per type (URL base name for `url`, `source` for trees). */
  readonly name?: string | undefined;
  /**
   * The expected hash, any form Nix accepts (SRI, `algo:…`, bare with the
   * type's default algo). For `url` the flat hash of the file (NAR hash when
   * `executable`); for trees the NAR hash of the tree. When given, the store
   * path is known before any network use and a cached path returns at once.
   */
  readonly hash?: string | Hash | undefined;
}

/** `builtins.fetchurl`: one file, flat-hashed (NAR-hashed when `executable`). */
export interface UrlSpec extends SpecBase {
  readonly type: 'url';
  readonly url: string;
  /** Mirror URLs tried in order after `url` fails. */
  readonly mirrors?: readonly string[] | undefined;
  /** `builtins.fetchurl { executable = true; }`: an executable file, hashed as its NAR (recursive). */
  readonly executable?: boolean | undefined;
}

/** `builtins.fetchTarball`: an archive, unpacked; its single top-level directory is the root. */
export interface TarballSpec extends SpecBase {
  readonly type: 'tarball';
  readonly url: string;
  readonly mirrors?: readonly string[] | undefined;
}

/** `builtins.fetchGit`: the tree of a commit of a git repository. */
export interface GitSpec extends SpecBase {
  readonly type: 'git';
  /** http(s)://, file:// or a local path. */
  readonly url: string;
  /** Branch or tag (or `refs/...`); default the remote HEAD. */
  readonly ref?: string | undefined;
  /** A full 40-hex commit id. */
  readonly rev?: string | undefined;
  readonly submodules?: boolean | undefined;
  readonly shallow?: boolean | undefined;
  /**
   * Fetch every branch and tag of the remote, not only `ref` (Nix's `allRefs`): for a `rev` that is not
   * in the history of `ref` (or of the remote HEAD). Changes what is downloaded, never the result.
   */
  readonly allRefs?: boolean | undefined;
  /**
   * Leave out `export-ignore` paths (.gitattributes). Default: true unless
   * `submodules`, as `builtins.fetchGit` does (both at once is an error).
   */
  readonly exportIgnore?: boolean | undefined;
}

/** A NAR (plain or compressed) by URL, ingested as the tree it describes; needs its hash. */
export interface NarSpec extends SpecBase {
  readonly type: 'nar';
  /** A `.nar`, possibly compressed (`.nar.xz`, `.nar.zst`, `.nar.bz2`, `.nar.gz`; detected by content). */
  readonly url: string;
  readonly mirrors?: readonly string[] | undefined;
}

/** A local file or tree, as `nix-store --add` (or `--add-fixed` with `flat`). */
export interface PathSpec extends SpecBase {
  readonly type: 'path';
  readonly path: string;
  /** Hash the file's bytes (`nix-store --add-fixed`) instead of its NAR. */
  readonly flat?: boolean | undefined;
}

/** What to fetch: a URL, a tarball, a git repository, a NAR or a local path. */
export type FetchSpec = UrlSpec | TarballSpec | GitSpec | NarSpec | PathSpec;

/** Source facts beyond the tree itself (Nix's fetchTree attributes where they apply). */
export interface FetchMetadata {
  /** The URL the content finally came from (after redirects / mirrors). */
  url?: string;
  rev?: string;
  /** Number of commits reachable from `rev`; absent for shallow fetches. */
  revCount?: number;
  /** Seconds since the epoch: commit time (git) or newest entry mtime (tarball). */
  lastModified?: number;
  /** The ref a git fetch resolved (`refs/heads/main`). */
  ref?: string;
  submodules?: boolean;
  etag?: string;
  lastModifiedHeader?: string;
}

/**
 * What a fetch produced: the store path (`path`), its path info, the source metadata and whether it came
 * from the cache.
 */
export interface FetchResult {
  /**
   * The store path as Nix prints it (`/nix/store/<hash>-<name>`, in the cache's store dir): the field
   * `nix path-info --json` calls `path`, and what `fetch-cache fetch` prints.
   */
  readonly path: string;
  /** The same store path, parsed (digest and name). */
  readonly storePath: StorePath;
  readonly pathInfo: PathInfo;
  readonly node: Node;
  /** SHA-256 of the NAR (always). */
  readonly narHash: Hash;
  /** The flat hash of the file (url fetches without `executable`). */
  readonly hash?: Hash;
  readonly metadata: FetchMetadata;
  /** True when answered from the cache without network. */
  readonly cached: boolean;
}

/** A progress report: bytes so far, total when known, bytes per second. */
export interface ProgressEvent {
  readonly label: string;
  readonly bytes: number;
  readonly total?: number | undefined;
  readonly rate: number;
  readonly done: boolean;
}
