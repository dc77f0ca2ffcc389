/**
 * Store paths (docs/formats.md §3): `<storeDir>/<nix32 of 20 bytes>-<name>`, the name
 * rules of Nix ≥ 2.21, parsing with Nix's canonicalisation, and the path
 * computations Nix uses for content-addressed objects: `makeStorePath`
 * (fingerprint → sha256 → XOR-fold to 20 bytes → nix32), text paths
 * (`builtins.toFile`, .drv) and fixed-output paths (fetchers, `nix-store --add`).
 * References are always full store paths, deduplicated and sorted bytewise
 * (valid store paths are ASCII, so UTF-16 order is byte order).
 */

import { FetchCacheError } from '../errors.js';
import type { Hash } from './hash.js';
import { compressHash, toBase16 } from './hash.js';
import { sha256 } from './hashing.js';
import { decodeNix32, encodeNix32, NIX32_ALPHABET } from './nixbase32.js';

/** A store path without its store dir: the 20-byte digest and the name. */
export interface StorePath {
  /** The 20-byte digest whose nix32 form is the hash part. */
  readonly digest: Uint8Array;
  readonly name: string;
}

/** `/nix/store`. */
export const DEFAULT_STORE_DIR = '/nix/store';

/**
 * A store dir as Nix canonicalises it (`canonPath`): absolute, `.`/`..` and repeated or trailing slashes
 * resolved (`/nix/store/` is `/nix/store`). A relative one is a TypeError (the CLI reports bad usage).
 */
export function canonicalStoreDir(dir: string): string {
  if (!dir.startsWith('/')) throw new TypeError(`a store dir must be an absolute path, not '${dir}'`);
  const parts: string[] = [];
  for (const part of dir.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}
export const STORE_PATH_HASH_CHARS = 32;
export const STORE_PATH_DIGEST_BYTES = 20;
export const STORE_PATH_NAME_MAX = 211;

export type FileIngestionMethod = 'flat' | 'nar' | 'git';

function quoted(text: string): string {
  return JSON.stringify(text.length > 300 ? `${text.slice(0, 300)}…` : text);
}

function badPath(message: string, path: string, cause?: unknown): FetchCacheError {
  return new FetchCacheError('ERR_BAD_STORE_PATH', message, {
    path,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The store dir is configuration, not data: it must be absolute with no trailing slash. */
function checkStoreDir(storeDir: string): void {
  if (
    storeDir.charCodeAt(0) !== 0x2f ||
    (storeDir.length > 1 && storeDir.charCodeAt(storeDir.length - 1) === 0x2f)
  ) {
    throw new TypeError(`store dir must be absolute without a trailing slash, got ${quoted(storeDir)}`);
  }
}

const NAME_CHARS: Uint8Array = (() => {
  const t = new Uint8Array(128);
  for (const c of '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+-._?=')
    t[c.charCodeAt(0)] = 1;
  return t;
})();

const HASH_CHARS: Uint8Array = (() => {
  const t = new Uint8Array(128);
  for (const c of NIX32_ALPHABET) t[c.charCodeAt(0)] = 1;
  return t;
})();

/**
 * Store path name rules: 1–211 characters from `[0-9a-zA-Z+\-._?=]`; since
 * Nix 2.21 also not `.` or `..` and not starting with `.-` or `..-` (so it can
 * never be mistaken for a path component). `.gitignore`, `...`, `...-` are fine.
 */
export function validateStorePathName(name: string): void {
  if (name.length === 0) throw badPath('store path name is empty', name);
  if (name.length > STORE_PATH_NAME_MAX) {
    throw badPath(`store path name ${quoted(name)} is longer than ${STORE_PATH_NAME_MAX} characters`, name);
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || NAME_CHARS[c] === 0) {
      throw badPath(
        `store path name ${quoted(name)} contains illegal character ${quoted(name.charAt(i))}`,
        name,
      );
    }
  }
  if (name === '.' || name === '..' || name.startsWith('.-') || name.startsWith('..-')) {
    throw badPath(`store path name ${quoted(name)} is '.' or '..' or starts with '.-' or '..-'`, name);
  }
}

export function isValidStorePathName(name: string): boolean {
  try {
    validateStorePathName(name);
    return true;
  } catch {
    return false;
  }
}

/** Parses `<hash32>-<name>`, the form narinfo `References`/`Deriver` use. */
export function parseStorePathBaseName(base: string): StorePath {
  if (base.length < STORE_PATH_HASH_CHARS + 2) throw badPath(`store path ${quoted(base)} is too short`, base);
  for (let i = 0; i < STORE_PATH_HASH_CHARS; i++) {
    const c = base.charCodeAt(i);
    if (c >= 128 || HASH_CHARS[c] === 0) {
      throw badPath(
        `store path ${quoted(base)} contains illegal hash character ${quoted(base.charAt(i))}`,
        base,
      );
    }
  }
  if (base.charCodeAt(STORE_PATH_HASH_CHARS) !== 0x2d /* - */) {
    throw badPath(`store path ${quoted(base)} lacks a '-' after the hash part`, base);
  }
  const name = base.slice(STORE_PATH_HASH_CHARS + 1);
  try {
    validateStorePathName(name);
  } catch (e) {
    throw badPath(`store path ${quoted(base)} has an invalid name: ${(e as Error).message}`, base, e);
  }
  return { digest: decodeNix32(base.slice(0, STORE_PATH_HASH_CHARS)), name };
}

/** Nix `canonPath` without symlink resolution: drops empty and `.` components, applies `..`. */
function canonPath(path: string): string | undefined {
  if (path.charCodeAt(0) !== 0x2f) return undefined;
  const parts: string[] = [];
  for (const c of path.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') parts.pop();
    else parts.push(c);
  }
  return `/${parts.join('/')}`;
}

/**
 * Parses a full store path in `storeDir`. Like Nix's `parseStorePath`, the path
 * is canonicalised first (`//`, `/./`, `x/..`, a trailing `/`); it must then be
 * a direct child of `storeDir` (subpaths such as `…-foo/bin/sh` are rejected).
 */
export function parseStorePath(path: string, storeDir: string = DEFAULT_STORE_DIR): StorePath {
  checkStoreDir(storeDir);
  const n = storeDir.length;
  let base: string | undefined;
  if (path.length > n + 1 && path.startsWith(storeDir) && path.charCodeAt(n) === 0x2f) {
    const rest = path.slice(n + 1);
    if (!rest.includes('/') && rest !== '.' && rest !== '..') base = rest;
  }
  if (base === undefined) {
    const canon = canonPath(path);
    if (canon === undefined) throw badPath(`path ${quoted(path)} is not an absolute path`, path);
    const slash = canon.lastIndexOf('/');
    const dir = slash === 0 ? '/' : canon.slice(0, slash);
    if (dir !== storeDir || slash === canon.length - 1) {
      throw badPath(`path ${quoted(path)} is not in the Nix store ${quoted(storeDir)}`, path);
    }
    base = canon.slice(slash + 1);
  }
  try {
    return parseStorePathBaseName(base);
  } catch (e) {
    throw badPath(`path ${quoted(path)} is not a valid store path: ${(e as Error).message}`, path, e);
  }
}

/** Like `parseStorePath` but rejects non-canonical spellings (Nix `parseStorePathCanonical`-style strictness). */
export function parseStorePathCanonical(path: string, storeDir: string = DEFAULT_STORE_DIR): StorePath {
  const sp = parseStorePath(path, storeDir);
  if (formatStorePath(sp, storeDir) !== path)
    throw badPath(`store path ${quoted(path)} is not canonical`, path);
  return sp;
}

export function storePathHashPart(sp: StorePath): string {
  return encodeNix32(sp.digest);
}

/** A store path without its store dir: `<hash>-<name>`. */
export function storePathBaseName(sp: StorePath): string {
  return `${encodeNix32(sp.digest)}-${sp.name}`;
}

/** A store path as Nix prints it: `<storeDir>/<hash>-<name>`. */
export function formatStorePath(sp: StorePath, storeDir: string = DEFAULT_STORE_DIR): string {
  checkStoreDir(storeDir);
  return `${storeDir}/${encodeNix32(sp.digest)}-${sp.name}`;
}

/**
 * Bytewise order of base names (C++ `StorePath::operator<`). The nix32 hash
 * part sorts like the digest read from its last byte backwards, so the digest
 * is compared in reverse before falling back to the (ASCII) name.
 */
export function compareStorePaths(a: StorePath, b: StorePath): number {
  for (let i = STORE_PATH_DIGEST_BYTES - 1; i >= 0; i--) {
    const d = a.digest[i]! - b.digest[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function storePathEquals(a: StorePath, b: StorePath): boolean {
  return compareStorePaths(a, b) === 0;
}

/** `<type>:sha256:<inner hex>:<storeDir>:<name>`, the string whose sha256 names a store path. */
export function storePathFingerprint(
  type: string,
  innerSha256: Uint8Array,
  name: string,
  storeDir: string = DEFAULT_STORE_DIR,
): string {
  if (innerSha256.length !== 32)
    throw new TypeError(`inner hash must be a 32-byte sha256, got ${innerSha256.length} bytes`);
  return `${type}:sha256:${toBase16(innerSha256)}:${storeDir}:${name}`;
}

/** Nix's `makeStorePath`: the store path of a type string, an inner SHA-256 and a name. */
export function makeStorePath(
  type: string,
  innerSha256: Uint8Array,
  name: string,
  storeDir: string = DEFAULT_STORE_DIR,
): StorePath {
  checkStoreDir(storeDir);
  validateStorePathName(name);
  const fingerprint = storePathFingerprint(type, innerSha256, name, storeDir);
  return { digest: compressHash(sha256(fingerprint), STORE_PATH_DIGEST_BYTES), name };
}

/** Validates, canonicalises, deduplicates and sorts full reference paths. */
export function sortReferences(
  references: readonly string[],
  storeDir: string = DEFAULT_STORE_DIR,
): string[] {
  const set = new Set<string>();
  for (const r of references) set.add(formatStorePath(parseStorePath(r, storeDir), storeDir));
  return [...set].sort();
}

function typeWithReferences(
  prefix: string,
  references: readonly string[],
  self: boolean,
  storeDir: string,
): string {
  let type = prefix;
  for (const r of sortReferences(references, storeDir)) type += `:${r}`;
  return self ? `${type}:self` : type;
}

/** `text` + `:<ref>`… — the type of `builtins.toFile` outputs and `.drv` files. */
export function textPathType(references: readonly string[], storeDir: string = DEFAULT_STORE_DIR): string {
  return typeWithReferences('text', references, false, storeDir);
}

/** The store path of a text file (`builtins.toFile`): from its name, content hash and references. */
export function makeTextPath(
  name: string,
  contentSha256: Uint8Array,
  references: readonly string[],
  storeDir: string = DEFAULT_STORE_DIR,
): StorePath {
  return makeStorePath(textPathType(references, storeDir), contentSha256, name, storeDir);
}

export interface FixedOutputPathOptions {
  name: string;
  method: FileIngestionMethod;
  hash: Hash;
  /** Full store paths of other objects referred to; only allowed for `nar` + sha256. */
  references?: readonly string[];
  /** Whether the object refers to itself (`:self`); only allowed for `nar` + sha256. */
  self?: boolean;
}

export interface FixedOutputPathInput {
  type: string;
  innerSha256: Uint8Array;
  /** `fixed:out:<r:|git:>algo:<hex>:` whose sha256 is the inner hash, unless the type is `source`. */
  innerFingerprint: string | undefined;
}

/**
 * The `makeStorePath` inputs of a fixed-output path (docs/formats.md §3). NAR+sha256 is
 * the `source` type with the hash itself as inner hash; everything else is
 * `output:out` over `fixed:out:…` and may not have references: that, and git
 * with an algorithm other than sha1/sha256, throw ERR_BAD_CA because the
 * content address cannot describe such an object.
 */
export function fixedOutputPathInput(
  opts: FixedOutputPathOptions,
  storeDir: string = DEFAULT_STORE_DIR,
): FixedOutputPathInput {
  const { method, hash } = opts;
  const refs = opts.references ?? [];
  const self = opts.self === true;
  if (method === 'git' && hash.algo !== 'sha1' && hash.algo !== 'sha256') {
    throw new FetchCacheError('ERR_BAD_CA', `git file ingestion must use sha1 or sha256, not ${hash.algo}`, {
      actual: hash.algo,
    });
  }
  if (method === 'nar' && hash.algo === 'sha256') {
    return {
      type: typeWithReferences('source', refs, self, storeDir),
      innerSha256: hash.digest,
      innerFingerprint: undefined,
    };
  }
  if (refs.length > 0 || self) {
    throw new FetchCacheError(
      'ERR_BAD_CA',
      `fixed-output path ${quoted(opts.name)} (${method}, ${hash.algo}) is not allowed to have references`,
      { path: opts.name },
    );
  }
  const prefix = method === 'nar' ? 'r:' : method === 'git' ? 'git:' : '';
  const innerFingerprint = `fixed:out:${prefix}${hash.algo}:${toBase16(hash.digest)}:`;
  return { type: 'output:out', innerSha256: sha256(innerFingerprint), innerFingerprint };
}

/**
 * The store path of fixed-output content (`builtins.fetchTarball`, `fetchurl`, `nix-store --add-fixed`):
 * from its name, method and hash.
 */
export function makeFixedOutputPath(
  opts: FixedOutputPathOptions,
  storeDir: string = DEFAULT_STORE_DIR,
): StorePath {
  const input = fixedOutputPathInput(opts, storeDir);
  return makeStorePath(input.type, input.innerSha256, opts.name, storeDir);
}
