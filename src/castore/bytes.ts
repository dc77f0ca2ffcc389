/**
 * Byte-string helpers shared by the castore model. Names in castore (and NAR)
 * are raw bytes and are ordered bytewise, which differs from JS string
 * ordering on UTF-16 code units, so every comparison goes through here.
 */

const encoder = new TextEncoder();
const lossyDecoder = new TextDecoder('utf-8');

/** Bytewise (unsigned, lexicographic) comparison; a proper prefix sorts first. */
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

/** A display form of a byte name for messages; invalid UTF-8 becomes U+FFFD. */
export function displayBytes(b: Uint8Array): string {
  return lossyDecoder.decode(b);
}

/**
 * A copy of `b` as a plain Uint8Array. `Buffer#slice` shares memory, so
 * `b.slice()` is not a copy when a caller hands in a Buffer.
 */
export function copyBytes(b: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(b);
}
