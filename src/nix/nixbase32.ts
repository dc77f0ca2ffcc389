/**
 * Nix base-32 ("nix32"), the encoding of store-path hash parts and of hashes in
 * narinfo and CA strings. Alphabet `0123456789abcdfghijklmnpqrsvwxyz` (no
 * `e o u t`). The byte string is read as one little-endian number and printed
 * most significant 5-bit group first, so the last output character holds the
 * low bits of the first byte (nix/src/libutil/base-nix-32.cc, docs/formats.md §2).
 * Encoding runs once per store path we print, so it avoids BigInt and string
 * concatenation.
 */

import { FetchCacheError } from '../errors.js';

export const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

const ENCODE_CODES: Uint8Array = Uint8Array.from(NIX32_ALPHABET, (c) => c.charCodeAt(0));

/** Char code → digit value, -1 for characters outside the alphabet. */
const DECODE_TABLE: Int8Array = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < NIX32_ALPHABET.length; i++) t[NIX32_ALPHABET.charCodeAt(i)] = i;
  return t;
})();

/** Encoded length for `n` bytes: ⌊(8n − 1)/5⌋ + 1, and 0 for 0 bytes. */
export function nix32Length(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`nix32Length: bad byte count ${n}`);
  return n === 0 ? 0 : Math.floor((8 * n - 1) / 5) + 1;
}

/** The byte count a nix32 string of `len` characters decodes to, or -1 if no byte count encodes to `len`. */
function decodedLength(len: number): number {
  const n = Math.floor((len * 5) / 8);
  return nix32Length(n) === len ? n : -1;
}

/** Whether some byte count encodes to exactly `len` characters (`1` and `3` do not, for example). */
export function isNix32Length(len: number): boolean {
  return Number.isInteger(len) && len >= 0 && decodedLength(len) >= 0;
}

/**
 * Digits are written as ASCII codes into one scratch buffer and turned into a
 * string once: several times faster than concatenating 32 one-character
 * strings. Reusing the buffer is safe because encoding is synchronous.
 */
let scratch = Buffer.allocUnsafe(128);

/** Bytes in Nix's base-32 (the hash part of store paths). */
export function encodeNix32(bytes: Uint8Array): string {
  const n = bytes.length;
  const len = nix32Length(n);
  if (len > scratch.length) scratch = Buffer.allocUnsafe(len);
  const out = scratch;
  for (let g = len - 1, k = 0; g >= 0; g--, k++) {
    const b = g * 5;
    const i = b >>> 3;
    const j = b & 7;
    const lo = bytes[i]! >>> j;
    const hi = i + 1 < n ? bytes[i + 1]! << (8 - j) : 0;
    out[k] = ENCODE_CODES[(lo | hi) & 31]!;
  }
  return out.toString('latin1', 0, len);
}

function quoted(text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);
}

/**
 * Decodes a nix32 string; the byte count follows from its length. Rejects
 * characters outside the alphabet, lengths no byte count encodes to, and set
 * bits above the last byte (so `zz` and `c0` are invalid, as in Nix and snix).
 */
export function decodeNix32(text: string): Uint8Array {
  const len = text.length;
  const n = decodedLength(len);
  if (n < 0) {
    throw new FetchCacheError('ERR_BAD_NIX32', `invalid nix32 string ${quoted(text)}: bad length ${len}`, {
      actual: text,
    });
  }
  const out = new Uint8Array(n);
  for (let k = 0; k < len; k++) {
    const code = text.charCodeAt(len - 1 - k);
    const digit = code < 128 ? DECODE_TABLE[code]! : -1;
    if (digit < 0) {
      throw new FetchCacheError(
        'ERR_BAD_NIX32',
        `invalid nix32 string ${quoted(text)}: bad character ${quoted(text.charAt(len - 1 - k))}`,
        { actual: text, offset: len - 1 - k },
      );
    }
    const b = k * 5;
    const i = b >>> 3;
    const j = b & 7;
    out[i] = out[i]! | ((digit << j) & 0xff);
    const carry = digit >>> (8 - j);
    if (i + 1 < n) {
      out[i + 1] = out[i + 1]! | carry;
    } else if (carry !== 0) {
      throw new FetchCacheError(
        'ERR_BAD_NIX32',
        `invalid nix32 string ${quoted(text)}: value overflows ${n} bytes`,
        {
          actual: text,
        },
      );
    }
  }
  return out;
}

/** Whether `text` is a valid nix32 string (same rules as `decodeNix32`). */
export function isNix32(text: string): boolean {
  try {
    decodeNix32(text);
    return true;
  } catch {
    return false;
  }
}
