/**
 * Content-address (`CA`) strings of narinfo and path info (docs/formats.md §4):
 * `text:sha256:<digest>`, `fixed:<algo>:<digest>` (flat), `fixed:r:<algo>:…`
 * (NAR) and `fixed:git:<algo>:…`. Parsing follows `ContentAddress::parse` in
 * nix/src/libstore/content-address.cc (digest in base16, nix32 or base64, told
 * apart by length); rendering always uses nix32. Also the store path a content
 * address implies, which is how a path is recognised as content-addressed
 * (trusted without a signature).
 */

import { FetchCacheError } from '../errors.js';
import { decodeHashDigest, type Hash, parseHashAlgo, parseSRI, toSRI } from './hash.js';
import { encodeNix32 } from './nixbase32.js';
import {
  DEFAULT_STORE_DIR,
  formatStorePath,
  makeFixedOutputPath,
  makeTextPath,
  parseStorePath,
  type StorePath,
} from './store-path.js';

export type ContentAddressMethod = 'text' | 'flat' | 'nar' | 'git';

/** A Nix content address: method (`text`, `flat`, `nar`, `git`) and hash. */
export interface ContentAddress {
  readonly method: ContentAddressMethod;
  readonly hash: Hash;
}

/** Path-info JSON (v2+) form: `{"method":"nar","hash":"sha256-…"}`. */
export interface ContentAddressJson {
  method: ContentAddressMethod;
  hash: string;
}

const METHODS: readonly ContentAddressMethod[] = ['text', 'flat', 'nar', 'git'];

function quoted(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

function badCa(message: string, actual: string, cause?: unknown): FetchCacheError {
  return new FetchCacheError('ERR_BAD_CA', message, { actual, ...(cause === undefined ? {} : { cause }) });
}

/** Parses a CA string; the empty string (no CA) is an error here, see `parseContentAddressOpt`. */
export function parseContentAddress(s: string): ContentAddress {
  const colon = s.indexOf(':');
  if (colon < 0) throw badCa(`not a content address (expected '<prefix>:<rest>'): ${quoted(s)}`, s);
  const prefix = s.slice(0, colon);
  let rest = s.slice(colon + 1);
  let method: ContentAddressMethod;
  if (prefix === 'text') {
    method = 'text';
  } else if (prefix === 'fixed') {
    method = 'flat';
    if (rest.startsWith('r:')) {
      method = 'nar';
      rest = rest.slice(2);
    } else if (rest.startsWith('git:')) {
      method = 'git';
      rest = rest.slice(4);
    }
  } else {
    throw badCa(`content address prefix ${quoted(prefix)} is not 'text' or 'fixed' in ${quoted(s)}`, s);
  }
  const algoEnd = rest.indexOf(':');
  if (algoEnd < 0) throw badCa(`content address hash must be '<algo>:<hash>' in ${quoted(s)}`, s);
  try {
    const hash = decodeHashDigest(rest.slice(algoEnd + 1), parseHashAlgo(rest.slice(0, algoEnd)), false);
    return { method, hash };
  } catch (e) {
    throw badCa(`invalid content address ${quoted(s)}: ${(e as Error).message}`, s, e);
  }
}

/** Like `parseContentAddress`, but the empty string means "no content address" (narinfo `CA:` absent/empty). */
export function parseContentAddressOpt(s: string): ContentAddress | undefined {
  return s === '' ? undefined : parseContentAddress(s);
}

function methodPrefix(method: ContentAddressMethod): string {
  switch (method) {
    case 'text':
      return 'text:';
    case 'flat':
      return 'fixed:';
    case 'nar':
      return 'fixed:r:';
    case 'git':
      return 'fixed:git:';
    default:
      throw new TypeError(`unknown content address method ${String(method)}`);
  }
}

/** A content address as Nix writes it (`fixed:r:sha256:<nix32>`, `text:sha256:…`). */
export function formatContentAddress(ca: ContentAddress): string {
  return `${methodPrefix(ca.method)}${ca.hash.algo}:${encodeNix32(ca.hash.digest)}`;
}

export function contentAddressToJson(ca: ContentAddress): ContentAddressJson {
  return { method: ca.method, hash: toSRI(ca.hash) };
}

export function contentAddressFromJson(json: unknown): ContentAddress {
  const o = json as { method?: unknown; hash?: unknown } | null;
  if (typeof o !== 'object' || o === null || typeof o.method !== 'string' || typeof o.hash !== 'string') {
    throw badCa(
      'content address JSON must be {"method": string, "hash": string}',
      JSON.stringify(json) ?? '',
    );
  }
  if (!(METHODS as readonly string[]).includes(o.method)) {
    throw badCa(`unknown content address method ${quoted(o.method)}`, o.method);
  }
  try {
    return { method: o.method as ContentAddressMethod, hash: parseSRI(o.hash) };
  } catch (e) {
    throw badCa(`invalid content address hash ${quoted(o.hash)}: ${(e as Error).message}`, o.hash, e);
  }
}

/**
 * The store path an object with this CA, name and references must have. Text:
 * references go into the type, sha256 only, no self-reference. Fixed: see
 * `makeFixedOutputPath`; `self` (the object refers to itself) becomes `:self`
 * and, like any reference, is only possible for NAR + sha256.
 */
export function storePathForContentAddress(
  name: string,
  ca: ContentAddress,
  references: readonly string[],
  storeDir: string = DEFAULT_STORE_DIR,
  opts?: { self?: boolean },
): StorePath {
  const self = opts?.self === true;
  if (ca.method === 'text') {
    if (ca.hash.algo !== 'sha256') {
      throw badCa(`text content address must use sha256, not ${ca.hash.algo}`, formatContentAddress(ca));
    }
    if (self)
      throw badCa(`text store object ${quoted(name)} cannot refer to itself`, formatContentAddress(ca));
    return makeTextPath(name, ca.hash.digest, references, storeDir);
  }
  return makeFixedOutputPath({ name, method: ca.method, hash: ca.hash, references, self }, storeDir);
}

/**
 * Whether `path` is exactly the path its CA implies, given its references as
 * recorded (full paths; `path` itself among them is a self-reference). This is
 * Nix's `isContentAddressed` check that lets an unsigned path be trusted.
 * A CA that cannot describe the references (for example flat with references)
 * yields false.
 */
export function isContentAddressedPath(
  path: string,
  ca: ContentAddress,
  references: readonly string[],
  storeDir: string = DEFAULT_STORE_DIR,
): boolean {
  const sp = parseStorePath(path, storeDir);
  const canonical = formatStorePath(sp, storeDir);
  const others: string[] = [];
  let self = false;
  for (const r of references) {
    if (formatStorePath(parseStorePath(r, storeDir), storeDir) === canonical) self = true;
    else others.push(r);
  }
  try {
    return (
      formatStorePath(storePathForContentAddress(sp.name, ca, others, storeDir, { self }), storeDir) ===
      canonical
    );
  } catch (e) {
    if (e instanceof FetchCacheError && e.code === 'ERR_BAD_CA') return false;
    throw e;
  }
}
