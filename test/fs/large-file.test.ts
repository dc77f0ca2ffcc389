/**
 * A large file added with its hashes computed on a worker thread (src/fs/large-file.ts): the NAR
 * sha256, the flat hash and the blob digest are those of the bytes (the NAR built here from the
 * format), the stored blob reads back as the file, and a writer given a wrong digest refuses it.
 * (The >100 MiB tree case of test/cli/store.test.ts takes this path too, against Nix.)
 */

import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { addLargeFile, WORKER_HASH_MIN_SIZE } from '../../src/fs/large-file.js';
import { blake3 } from '../../src/nix/hashing.js';

let tmp: string;
let cache: Cache;
let data: Buffer;
let file: string;

/** A NAR string: u64 LE length, the bytes, zero padding to 8. */
function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
}

function narOfFile(bytes: Buffer, executable: boolean): Buffer {
  return Buffer.concat([
    str('nix-archive-1'),
    str('('),
    str('type'),
    str('regular'),
    ...(executable ? [str('executable'), str('')] : []),
    str('contents'),
    str(bytes),
    str(')'),
  ]);
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'fc-large-file-'));
  cache = await openCache({ root: join(tmp, 'root') });
  // Not a multiple of the read size or of 8; random, so every chunk differs.
  const parts: Buffer[] = [];
  for (let i = 0; i < (WORKER_HASH_MIN_SIZE >> 20) + 1; i++) {
    parts.push(Buffer.from(createHash('sha512').update(`block ${i}`).digest().toString('hex').repeat(8192)));
  }
  parts.push(Buffer.from('odd tail'));
  data = Buffer.concat(parts);
  file = join(tmp, 'big.bin');
  writeFileSync(file, data);
});

afterAll(async () => {
  await cache?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('addLargeFile', () => {
  it.each([false, true])(
    'executable %s: NAR sha256 and size, flat hash and blob digest of the bytes',
    async (exe) => {
      chmodSync(file, exe ? 0o755 : 0o644);
      const r = await addLargeFile(cache.blobs, file, data.length, exe, 'sha512');
      expect(r).toBeDefined();
      const nar = narOfFile(data, exe);
      expect(Buffer.from(r!.narSum.narSha256).toString('hex')).toBe(
        createHash('sha256').update(nar).digest('hex'),
      );
      expect(r!.narSum.narSize).toBe(nar.length);
      expect(Buffer.from(r!.flat!).toString('hex')).toBe(createHash('sha512').update(data).digest('hex'));
      expect(r!.blob).toEqual({ digest: blake3(data), size: data.length });
      const back = createHash('sha256');
      const stream = await cache.blobs.read(r!.blob.digest);
      expect(stream).toBeDefined();
      for await (const c of stream!) back.update(c);
      expect(back.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    },
  );

  it('a file that is not the size it was said to be is ERR_IO', async () => {
    await expect(addLargeFile(cache.blobs, file, data.length + 1, false)).rejects.toMatchObject({
      code: 'ERR_IO',
    });
    await expect(addLargeFile(cache.blobs, file, data.length - 1, false)).rejects.toMatchObject({
      code: 'ERR_IO',
    });
  });
});

describe('BlobService.writer({ digest })', () => {
  it('stores a many-chunk blob under the digest given; refuses a one-chunk blob whose digest is not the one given', async () => {
    const small = Buffer.from('one chunk only');
    const w = cache.blobs.writer({ digest: Promise.resolve(new Uint8Array(32).fill(7)) });
    await w.write(small);
    await expect(w.close()).rejects.toThrow(/not the digest/);
    expect(await cache.blobs.has(blake3(small))).toBe(false);
    const right = cache.blobs.writer({ digest: Promise.resolve(blake3(small)) });
    await right.write(small);
    expect(await right.close()).toEqual({ digest: blake3(small), size: small.length });
  });
});
