/**
 * Byte-string helpers shared by the pure layers. Names in NAR and castore are
 * raw bytes, ordered bytewise (never by JS string order, which compares
 * UTF-16 code units and disagrees with UTF-8 byte order), and copied with
 * Uint8Array semantics (`Buffer#slice` does not copy).
 */

const encoder = new TextEncoder();
const lossy = new TextDecoder('utf-8', { fatal: false });

/** Bytewise order: -1, 0 or 1. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** UTF-8 encoding of a JS string. */
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Strings as UTF-8, bytes as they are. */
export function toBytes(s: Uint8Array | string): Uint8Array {
  return typeof s === 'string' ? encoder.encode(s) : s;
}

/** A copy of `b` as a plain Uint8Array, even when `b` is a Buffer. */
export function copyBytes(b: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(b);
}

/**
 * Bytes rendered for a one-line error message: UTF-8 (invalid sequences as
 * U+FFFD), control characters as `\xNN`, cut at 1024 bytes like Nix does.
 */
export function displayBytes(b: Uint8Array): string {
  const s = lossy.decode(b.subarray(0, 1024));
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
