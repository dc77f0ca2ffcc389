/**
 * NAR wire primitives shared by the encoder, the parser and the listing
 * builder (docs/formats.md §1; snix `nix-compat/src/nar/wire/mod.rs`). Every string is a
 * u64 little-endian length, the bytes, then zero padding to a multiple of 8;
 * file contents are framed the same way. The pre-assembled token runs below
 * are the byte sequences a canonical writer emits between variable parts, so
 * the encoder copies a handful of constant blocks instead of many 8-byte
 * pieces. The limits are nix@HEAD's (`narMaxName`, `narMaxTarget`,
 * `narMaxTag`, `narMaxDepth`), also enforced by snix.
 */

export { bytesEqual, compareBytes, displayBytes, toBytes } from '../../bytes.js';

export const NAR_MAGIC = 'nix-archive-1';

/** Longest entry name (bytes) nix@HEAD and snix accept. */
export const MAX_NAME_LEN = 255;
/** Longest symlink target (bytes) nix@HEAD and snix accept. */
export const MAX_TARGET_LEN = 4095;
/** Longest keyword token nix@HEAD reads; the longest real one is `executable` (10). */
export const MAX_TAG_LEN = 32;
/** A node at this many path components below the root is rejected (`depth >= narMaxDepth`). */
export const NAR_MAX_DEPTH = 64;

const utf8 = new TextEncoder();

/** Zero bytes needed after `n` bytes to reach a multiple of 8. */
export function padLen(n: number): number {
  return (8 - (n % 8)) % 8;
}

/** `n` rounded up to a multiple of 8 (`p(n)` in snix's NAR size formula). */
export function padded(n: number): number {
  return n + padLen(n);
}

/** Writes `n` (0 ≤ n ≤ 2^53−1) as u64 little-endian at `at`. */
export function writeU64(buf: Uint8Array, at: number, n: number): void {
  const lo = n % 0x1_0000_0000;
  const hi = (n - lo) / 0x1_0000_0000;
  buf[at] = lo & 0xff;
  buf[at + 1] = (lo >>> 8) & 0xff;
  buf[at + 2] = (lo >>> 16) & 0xff;
  buf[at + 3] = lo >>> 24;
  buf[at + 4] = hi & 0xff;
  buf[at + 5] = (hi >>> 8) & 0xff;
  buf[at + 6] = (hi >>> 16) & 0xff;
  buf[at + 7] = hi >>> 24;
}

/** `str(s)`: length, bytes, zero padding. */
export function encodeStr(s: Uint8Array | string): Uint8Array {
  const bytes = typeof s === 'string' ? utf8.encode(s) : s;
  const out = new Uint8Array(8 + padded(bytes.length));
  writeU64(out, 0, bytes.length);
  out.set(bytes, 8);
  return out;
}

function concatTokens(...parts: string[]): Uint8Array {
  const strs = parts.map((p) => encodeStr(p));
  const out = new Uint8Array(strs.reduce((n, s) => n + s.length, 0));
  let at = 0;
  for (const s of strs) {
    out.set(s, at);
    at += s.length;
  }
  return out;
}

/** Token runs, named after snix's `TOK_*` (in snix `nix-compat/src/nar/wire/mod.rs`). */
export const TOK_NAR = concatTokens(NAR_MAGIC, '(', 'type'); // 56
export const TOK_SYM = concatTokens('symlink', 'target'); // 32
export const TOK_REG = concatTokens('regular', 'contents'); // 32
export const TOK_EXE = concatTokens('regular', 'executable', '', 'contents'); // 64
export const TOK_DIR = concatTokens('directory'); // 24
export const TOK_ENT = concatTokens('entry', '(', 'name'); // 48
export const TOK_NOD = concatTokens('node', '(', 'type'); // 48
export const TOK_PAR = concatTokens(')'); // 16

/**
 * Why `name` cannot be a NAR entry name, or undefined when it can. Empty, `.`,
 * `..`, `/` and NUL are rejected by every Nix ≥ 2; the 255-byte limit is
 * nix@HEAD's. Callers that take names from users turn the reason into their
 * own error.
 */
export function invalidNameReason(name: Uint8Array): string | undefined {
  if (name.length === 0) return 'empty';
  if (name.length > MAX_NAME_LEN) return `${name.length} bytes, longer than ${MAX_NAME_LEN}`;
  if (name.length === 1 && name[0] === 0x2e) return "'.'";
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return "'..'";
  if (name.includes(0x2f)) return "contains '/'";
  if (name.includes(0)) return 'contains NUL';
  return undefined;
}

/** Why `target` cannot be a symlink target (empty, NUL, > 4095 bytes), or undefined. */
export function invalidTargetReason(target: Uint8Array): string | undefined {
  if (target.length === 0) return 'empty';
  if (target.length > MAX_TARGET_LEN) return `${target.length} bytes, longer than ${MAX_TARGET_LEN}`;
  if (target.includes(0)) return 'contains NUL';
  return undefined;
}
