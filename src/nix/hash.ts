/**
 * Nix hashes as values: an algorithm plus digest bytes, parsed from and printed
 * to every textual form Nix uses (docs/formats.md §2): base16, nix32, base64, the
 * prefixed `algo:<any of the three>` (encoding told apart by length) and SRI
 * `algo-<base64>`. Parsing follows `Hash::parseAny` in nix/src/libutil/hash.cc,
 * including its lenient base64 decoder; output is always canonical (lowercase
 * hex, padded base64). Only md5/sha1/sha256/sha512 are supported: Nix's
 * blake3 sits behind an experimental feature and is not used by fetchers.
 */

import { bytesEqual } from '../bytes.js';
import { FetchCacheError } from '../errors.js';
import { digestOf, HASH_ALGOS, HASH_SIZE, type HashAlgo } from './hashing.js';
import { decodeNix32, encodeNix32, nix32Length } from './nixbase32.js';

export type { HashAlgo } from './hashing.js';

/** A hash: its algorithm and digest bytes. */
export interface Hash {
  readonly algo: HashAlgo;
  readonly digest: Uint8Array;
}

/** How a hash is written: base16, nix32 (Nix's base-32), base64, or SRI (`sha256-<base64>`). */
export type HashFormat = 'base16' | 'nix32' | 'base64' | 'sri';

export const HASH_FORMATS: readonly HashFormat[] = ['base16', 'nix32', 'base64', 'sri'];

function quoted(text: string): string {
  return JSON.stringify(text.length > 160 ? `${text.slice(0, 160)}…` : text);
}

function badHash(message: string, actual?: string, cause?: unknown): FetchCacheError {
  return new FetchCacheError('ERR_BAD_HASH', message, {
    ...(actual === undefined ? {} : { actual }),
    ...(cause === undefined ? {} : { cause }),
  });
}

export function isHashAlgo(name: string): name is HashAlgo {
  return (HASH_ALGOS as readonly string[]).includes(name);
}

export function parseHashAlgo(name: string): HashAlgo {
  if (isHashAlgo(name)) return name;
  throw badHash(`unknown hash algorithm ${quoted(name)}, expected one of ${HASH_ALGOS.join(', ')}`, name);
}

/** Parses a CLI hash format name; `base32` is Nix's deprecated alias of `nix32`. */
export function parseHashFormat(name: string): HashFormat {
  if (name === 'base32') return 'nix32';
  if ((HASH_FORMATS as readonly string[]).includes(name)) return name as HashFormat;
  throw badHash(`unknown hash format ${quoted(name)}, expected one of ${HASH_FORMATS.join(', ')}`, name);
}

/** Builds a Hash, checking the digest size (a wrong size is a programming error). */
export function makeHash(algo: HashAlgo, digest: Uint8Array): Hash {
  if (digest.length !== HASH_SIZE[algo]) {
    throw new TypeError(`a ${algo} digest has ${HASH_SIZE[algo]} bytes, got ${digest.length}`);
  }
  return { algo, digest };
}

/** The hash of some bytes (a string is hashed as UTF-8). */
export function hashOf(algo: HashAlgo, data: Uint8Array | string): Hash {
  return { algo, digest: digestOf(algo, data) };
}

export function hashEquals(a: Hash, b: Hash): boolean {
  return a.algo === b.algo && bytesEqual(a.digest, b.digest);
}

/** XOR-folds `digest` into `size` bytes (Nix `compressHash`; sha256 → 20 bytes for store paths). */
export function compressHash(digest: Uint8Array, size: number): Uint8Array {
  if (!Number.isInteger(size) || size <= 0) throw new TypeError(`compressHash: bad size ${size}`);
  const out = new Uint8Array(size);
  for (let i = 0; i < digest.length; i++) out[i % size] = out[i % size]! ^ digest[i]!;
  return out;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function toBase16(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('hex');
}

/** Decodes hex (either case); odd length or a non-hex digit → ERR_BAD_HASH. */
export function fromBase16(text: string): Uint8Array {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw badHash(`invalid base-16 string ${quoted(text)}`, text);
  }
  const b = Buffer.from(text, 'hex');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Standard alphabet, `=`-padded: what Nix prints. */
export function toBase64(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('base64');
}

const BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BASE64_TABLE: Int8Array = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) t[BASE64_ALPHABET.charCodeAt(i)] = i;
  return t;
})();

/**
 * Nix's base64 decoder (`base64::decode`): stops at the first `=` (so padding
 * may be missing, short, long, or followed by garbage), skips `\n`, rejects
 * any other character outside the standard alphabet, and drops left-over
 * bits. Callers check the decoded length.
 */
export function fromBase64Lenient(text: string): Uint8Array {
  const out = new Uint8Array(Math.floor((text.length * 3) / 4) + 1);
  let n = 0;
  let acc = 0;
  let bits = 0;
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c === 0x3d /* = */) break;
    if (c === 0x0a /* \n */) continue;
    const digit = c < 128 ? BASE64_TABLE[c]! : -1;
    if (digit < 0) throw badHash(`invalid character ${quoted(text.charAt(k))} in base-64 string`, text);
    acc = ((acc << 6) | digit) & 0xffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >>> bits) & 0xff;
    }
  }
  return out.slice(0, n);
}

/** Prints `h` in `format`; `prefix: true` adds `algo:` to base16/nix32/base64; SRI always has `algo-`. */
export function formatHash(h: Hash, format: HashFormat, opts?: { prefix?: boolean }): string {
  const prefix = opts?.prefix === true ? `${h.algo}:` : '';
  switch (format) {
    case 'base16':
      return prefix + toBase16(h.digest);
    case 'nix32':
      return prefix + encodeNix32(h.digest);
    case 'base64':
      return prefix + toBase64(h.digest);
    case 'sri':
      return `${h.algo}-${toBase64(h.digest)}`;
    default:
      throw new TypeError(`unknown hash format ${String(format)}`);
  }
}

/** A hash in SRI form, `sha256-<base64>`. */
export function toSRI(h: Hash): string {
  return formatHash(h, 'sri');
}

/** `sha256:<nix32>`, the form of narinfo `NarHash`/`FileHash` and of Nix's hash-mismatch messages. */
export function toNix32Prefixed(h: Hash): string {
  return formatHash(h, 'nix32', { prefix: true });
}

/**
 * Decodes the digest part of a hash whose algorithm is known (`Hash::Hash(rest,
 * algo, isSRI)` in Nix): SRI is always base64 with the decoded length checked;
 * otherwise the encoding is chosen by length (base16 2n, nix32, base64 4⌈n/3⌉).
 */
export function decodeHashDigest(rest: string, algo: HashAlgo, isSRI: boolean): Hash {
  const size = HASH_SIZE[algo];
  if (!isSRI && rest.length === 2 * size) {
    try {
      return { algo, digest: fromBase16(rest) };
    } catch (e) {
      throw badHash(`invalid base-16 ${algo} hash ${quoted(rest)}`, rest, e);
    }
  }
  if (!isSRI && rest.length === nix32Length(size)) {
    try {
      return { algo, digest: decodeNix32(rest) };
    } catch (e) {
      throw badHash(`invalid nix32 ${algo} hash ${quoted(rest)}`, rest, e);
    }
  }
  if (isSRI || rest.length === 4 * Math.ceil(size / 3)) {
    let digest: Uint8Array;
    try {
      digest = fromBase64Lenient(rest);
    } catch (e) {
      throw badHash(`invalid ${isSRI ? 'SRI' : 'base-64'} ${algo} hash ${quoted(rest)}`, rest, e);
    }
    if (digest.length !== size) {
      throw badHash(
        `invalid ${isSRI ? 'SRI' : 'base-64'} ${algo} hash ${quoted(rest)}: ${digest.length} bytes, expected ${size}`,
        rest,
      );
    }
    return { algo, digest };
  }
  throw badHash(`hash ${quoted(rest)} has wrong length for hash algorithm ${algo}`, rest);
}

/** Splits off `algo:` (prefixed) or else `algo-` (SRI), as `getParsedTypeAndSRI` in Nix does. */
function splitAlgo(text: string): { algo: HashAlgo | undefined; rest: string; isSRI: boolean } {
  const colon = text.indexOf(':');
  if (colon >= 0)
    return { algo: parseHashAlgo(text.slice(0, colon)), rest: text.slice(colon + 1), isSRI: false };
  const dash = text.indexOf('-');
  if (dash >= 0) return { algo: parseHashAlgo(text.slice(0, dash)), rest: text.slice(dash + 1), isSRI: true };
  return { algo: undefined, rest: text, isSRI: false };
}

/**
 * Parses any hash form. Without `algo` the text must carry its algorithm (SRI
 * or `algo:` prefix); with `algo`, bare base16/nix32/base64 is accepted too and
 * a carried algorithm must agree with it.
 */
export function parseHash(text: string, algo?: HashAlgo): Hash {
  const parsed = splitAlgo(text);
  if (parsed.algo === undefined && algo === undefined) {
    throw badHash(
      `hash ${quoted(text)} does not include a type, nor is the type otherwise known from context`,
      text,
    );
  }
  if (parsed.algo !== undefined && algo !== undefined && parsed.algo !== algo) {
    throw new FetchCacheError('ERR_BAD_HASH', `hash ${quoted(text)} should have type ${algo}`, {
      expected: algo,
      actual: text,
    });
  }
  return decodeHashDigest(parsed.rest, (parsed.algo ?? algo)!, parsed.isSRI);
}

/** Parses a hash that must name its algorithm (`algo:…` or SRI), like Nix's `parseAnyPrefixed` for narinfo. */
export function parseAnyPrefixedHash(text: string): Hash {
  const parsed = splitAlgo(text);
  if (parsed.algo === undefined) throw badHash(`hash ${quoted(text)} does not include a type`, text);
  return decodeHashDigest(parsed.rest, parsed.algo, parsed.isSRI);
}

/** Parses strictly an SRI hash `algo-<base64>` (Nix `Hash::parseSRI`, used for flake `narHash`). */
export function parseSRI(text: string): Hash {
  const dash = text.indexOf('-');
  if (dash < 0) throw badHash(`hash ${quoted(text)} is not SRI`, text);
  return decodeHashDigest(text.slice(dash + 1), parseHashAlgo(text.slice(0, dash)), true);
}
