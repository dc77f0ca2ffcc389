/**
 * BLAKE3-256 digests, the content addresses of castore: a blob's digest is
 * BLAKE3 of its bytes, a directory's is BLAKE3 of its canonical protobuf
 * encoding (see directory.ts). Text forms: lowercase hex (storage keys, logs)
 * and snix's display form `blake3-<base64 std, padded>`
 * (`snix/castore/src/digests.rs`), whose parser requires the prefix.
 */

import { FetchCacheError } from '../errors.js';
import { blake3 } from '../nix/hashing.js';
import { bytesEqual } from './bytes.js';

export { bytesEqual, compareBytes, utf8 } from './bytes.js';

/** 32 raw bytes. Treat as read-only. */
export type B3Digest = Uint8Array;

export const B3_LEN = 32;

const B3_PREFIX = 'blake3-';

/**
 * BLAKE3 of the empty string: the empty blob and the empty directory. A
 * constant, not computed at load: that loaded the native BLAKE3 addon (~12 ms)
 * in every command, also those that never hash (a fetch-index hit).
 */
export const EMPTY_B3: B3Digest = new Uint8Array(
  Buffer.from('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262', 'hex'),
);

export function isB3Digest(d: unknown): d is B3Digest {
  return d instanceof Uint8Array && d.length === B3_LEN;
}

function assertDigest(d: Uint8Array): void {
  if (d.length !== B3_LEN) throw new TypeError(`a BLAKE3 digest has ${B3_LEN} bytes, got ${d.length}`);
}

/** A BLAKE3 digest as 64 lowercase hex digits. */
export function b3ToHex(d: B3Digest): string {
  assertDigest(d);
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex');
}

/** Parses 64 hex digits (either case). */
export function b3FromHex(hex: string): B3Digest {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new FetchCacheError('ERR_BAD_HASH', 'a BLAKE3 digest in hex has 64 hex digits', {
      expected: '64 hex digits',
      actual: hex,
    });
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** snix's Display form, e.g. `blake3-rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI=`. */
export function b3ToString(d: B3Digest): string {
  assertDigest(d);
  return B3_PREFIX + Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64');
}

/**
 * Parses `blake3-<base64>` as snix's `FromStr` does: prefix required, standard
 * alphabet with padding, no stray trailing bits, exactly 32 bytes.
 */
export function parseB3Digest(text: string): B3Digest {
  const bad = (why: string): never => {
    throw new FetchCacheError('ERR_BAD_HASH', `invalid BLAKE3 digest: ${why}`, {
      expected: 'blake3-<base64 of 32 bytes>',
      actual: text,
    });
  };
  if (!text.startsWith(B3_PREFIX)) bad('missing "blake3-" prefix');
  const b64 = text.slice(B3_PREFIX.length);
  if (!/^[A-Za-z0-9+/]{43}=$/.test(b64)) bad('not padded base64 of 32 bytes');
  const bytes = new Uint8Array(Buffer.from(b64, 'base64'));
  // Node ignores non-zero trailing bits; snix's base64 engine rejects them.
  if (bytes.length !== B3_LEN || Buffer.from(bytes).toString('base64') !== b64) bad('non-canonical base64');
  return bytes;
}

export function b3Equals(a: B3Digest, b: B3Digest): boolean {
  return bytesEqual(a, b);
}

/** The castore digest of a blob: BLAKE3 of its content. */
export function blobDigest(data: Uint8Array): B3Digest {
  return blake3(data);
}
