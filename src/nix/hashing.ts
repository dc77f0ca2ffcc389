/**
 * The one place that chooses hash implementations. Callers ask for an
 * incremental hasher by algorithm name and never import a hashing library
 * themselves, so the choice can change after measurement without touching them.
 *
 * node:crypto (OpenSSL) for md5/sha1/sha256/sha512, an order of magnitude
 * faster than pure-JS hashing; `@napi-rs/blake-hash` (native Rust, SIMD) for
 * BLAKE3, several times faster than the WASM builds.
 */

import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

type Blake3Module = typeof import('@napi-rs/blake-hash');
let blake3Module: Blake3Module | undefined;

/** The native BLAKE3 addon, loaded on first use: commands that only need SHA (`hash path`) start faster. */
function blake3Native(): Blake3Module {
  blake3Module ??= createRequire(import.meta.url)('@napi-rs/blake-hash') as Blake3Module;
  return blake3Module;
}

/** The algorithms Nix hashes (`HashAlgorithm` in nix/src/libutil/hash.cc). */
export type HashAlgo = 'md5' | 'sha1' | 'sha256' | 'sha512';

export const HASH_ALGOS: readonly HashAlgo[] = ['md5', 'sha1', 'sha256', 'sha512'];

/** Digest sizes in bytes. */
export const HASH_SIZE: Readonly<Record<HashAlgo, number>> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

export interface Hasher {
  /** Bytes, or a string hashed as its UTF-8 bytes. */
  update(data: Uint8Array | string): void;
  /** The digest; the hasher must not be used afterwards. */
  digest(): Uint8Array;
}

export function createHasher(algo: HashAlgo): Hasher {
  const h = createHash(algo);
  return {
    update(data) {
      h.update(data);
    },
    digest() {
      const d = h.digest();
      return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    },
  };
}

export function digestOf(algo: HashAlgo, data: Uint8Array | string): Uint8Array {
  const d = createHash(algo).update(data).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

export function sha256(data: Uint8Array | string): Uint8Array {
  return digestOf('sha256', data);
}

export function createBlake3Hasher(): Hasher {
  const h = new (blake3Native().Blake3Hasher)();
  return {
    update(data) {
      h.update(data);
    },
    digest() {
      const d = h.digestBuffer();
      return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    },
  };
}

/** BLAKE3-256 of `data`, the castore digest of blobs and directories. */
export function blake3(data: Uint8Array): Uint8Array {
  const d = blake3Native().blake3(data);
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}
