/**
 * The stored form of a blob's chunk list (the value under the blob's digest in
 * the `blobs` sublevel). Compact, because a 1 GiB blob has thousands of
 * chunks, and self-checking, because the list is not content-addressed by its
 * key (the key is the digest of the blob, not of the list):
 *
 *   u8 version = 1
 *   varint count
 *   count × ( 32-byte BLAKE3 of the chunk, varint chunk size (1 … 2^32-1) )
 *   4 bytes: the first 4 bytes of BLAKE3 of everything before them
 *
 * Varints are unsigned LEB128 in their shortest form. Decoding is strict:
 * anything else (other version, overlong varint, zero size, trailing bytes,
 * bad checksum) is ERR_INTEGRITY, since it can only come from a damaged store.
 */

import type { B3Digest } from '../castore/digest.js';
import { FetchCacheError } from '../errors.js';
import { blake3 } from '../nix/hashing.js';
import type { ChunkMeta } from './service.js';

const VERSION = 1;
const DIGEST_LEN = 32;
const CHECK_LEN = 4;
const MAX_CHUNK = 0xffffffff;

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

export function encodeChunkList(chunks: readonly ChunkMeta[]): Uint8Array {
  let len = 1 + varintLength(chunks.length) + CHECK_LEN;
  for (const c of chunks) {
    if (c.digest.length !== DIGEST_LEN) throw new TypeError('a chunk digest has 32 bytes');
    if (!Number.isInteger(c.size) || c.size < 1 || c.size > MAX_CHUNK) {
      throw new TypeError(`chunk size out of range: ${c.size}`);
    }
    len += DIGEST_LEN + varintLength(c.size);
  }
  const out = new Uint8Array(len);
  out[0] = VERSION;
  let at = writeVarint(out, 1, chunks.length);
  for (const c of chunks) {
    out.set(c.digest, at);
    at = writeVarint(out, at + DIGEST_LEN, c.size);
  }
  out.set(blake3(out.subarray(0, at)).subarray(0, CHECK_LEN), at);
  return out;
}

/** The decoded list with its total size. `path` names the blob in errors. */
export function decodeChunkList(bytes: Uint8Array, path?: string): { size: number; chunks: ChunkMeta[] } {
  const bad = (why: string): never => {
    throw new FetchCacheError('ERR_INTEGRITY', `damaged chunk list: ${why}`, {
      expected: `chunk list version ${VERSION}`,
      actual: why,
      ...(path === undefined ? {} : { path }),
    });
  };
  const body = bytes.length - CHECK_LEN;
  if (body < 2) bad('too short');
  const check = blake3(bytes.subarray(0, body));
  for (let i = 0; i < CHECK_LEN; i++) if (check[i] !== bytes[body + i]) bad('checksum mismatch');
  if (bytes[0] !== VERSION) bad(`unknown version ${bytes[0]}`);
  let at = 1;
  const varint = (): number => {
    let n = 0;
    let scale = 1;
    for (;;) {
      if (at >= body) bad('truncated');
      const b = bytes[at++]!;
      n += (b & 0x7f) * scale;
      if (n > MAX_CHUNK) bad('number too large');
      if ((b & 0x80) === 0) {
        if (b === 0 && scale > 1) bad('overlong varint');
        return n;
      }
      scale *= 128;
    }
  };
  const count = varint();
  if (count > (body - at) / (DIGEST_LEN + 1)) bad('count exceeds the data');
  const chunks: ChunkMeta[] = [];
  let size = 0;
  for (let i = 0; i < count; i++) {
    if (at + DIGEST_LEN > body) bad('truncated');
    const digest: B3Digest = bytes.slice(at, at + DIGEST_LEN);
    at += DIGEST_LEN;
    const chunkSize = varint();
    if (chunkSize === 0) bad('empty chunk');
    chunks.push({ digest, size: chunkSize });
    size += chunkSize;
  }
  if (at !== body) bad('trailing bytes');
  return { size, chunks };
}
