/**
 * Transparent decompression of a downloaded byte stream, chosen by the magic
 * bytes at its start as snix's `DecompressedReader` does (snix-reference.md
 * §6.5; the URL's extension is irrelevant): gzip `1f 8b`, bzip2 `BZh`, xz
 * `fd 37 7a 58 5a 00`, zstd `28 b5 2f fd`; anything else passes through
 * unchanged (plain `.nar`, plain `.tar`). Used by the NAR and tarball
 * fetchers. Corrupt or truncated compressed data is ERR_BAD_ARCHIVE; errors
 * of the source itself (ERR_HTTP …) pass through untouched.
 *
 * Every decoder streams with bounded buffering: zlib and lzma-native are
 * Node transforms driven through `pipeline`; fzstd and unbzip2-stream emit
 * synchronously from each push, so their output is drained after every input
 * chunk.
 */

import type { Transform } from 'node:stream';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { FetchCacheError } from '../errors.js';

export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

const MAGICS: readonly [Compression, readonly number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
];

/** The compression whose magic `head` starts with (`none` when no magic matches). */
export function sniffCompression(head: Uint8Array): Compression {
  for (const [kind, magic] of MAGICS) {
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return kind;
  }
  return 'none';
}

/** Decompress `source` according to its first bytes. */
export async function* decompress(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  // Read until the longest magic (6 bytes) is there or the stream ends.
  const head: Uint8Array[] = [];
  let headLength = 0;
  let ended = false;
  while (headLength < 6) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    head.push(r.value);
    headLength += r.value.length;
  }
  const kind = sniffCompression(Buffer.concat(head));
  async function* rest(): AsyncGenerator<Uint8Array> {
    yield* head;
    if (ended) return;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  }
  try {
    switch (kind) {
      case 'none':
        yield* rest();
        return;
      case 'gzip':
        yield* throughTransform(rest(), createGunzip(), kind);
        return;
      case 'xz':
        // Decoders load on first use: most fetches need at most one of them.
        yield* throughTransform(rest(), (await import('lzma-native')).createDecompressor(), kind);
        return;
      case 'zstd':
        yield* unzstd(rest());
        return;
      case 'bzip2':
        yield* bunzip2(rest());
        return;
    }
  } finally {
    await it.return?.();
  }
}

function badArchive(kind: Compression, e: unknown): unknown {
  if (e instanceof FetchCacheError) return e;
  const why = e instanceof Error ? e.message : String(e);
  return new FetchCacheError('ERR_BAD_ARCHIVE', `corrupt or truncated ${kind} data: ${why}`, { cause: e });
}

async function* throughTransform(
  source: AsyncIterable<Uint8Array>,
  transform: Transform,
  kind: Compression,
): AsyncGenerator<Uint8Array> {
  // The source's own error (e.g. ERR_HTTP) reaches us through `pipeline`, which destroys the transform with it.
  const done = pipeline(Readable.from(source, { objectMode: false }), transform);
  done.catch(() => {});
  try {
    for await (const chunk of transform as AsyncIterable<Buffer>) yield chunk;
    await done;
  } catch (e) {
    throw badArchive(
      kind,
      (await done.then(
        () => e,
        (err: unknown) => err,
      )) ?? e,
    );
  } finally {
    transform.destroy();
  }
}

async function* unzstd(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const out: Uint8Array[] = [];
  const { Decompress } = await import('fzstd');
  const decoder = new Decompress((chunk) => {
    out.push(chunk);
  });
  const push = (chunk: Uint8Array, final: boolean) => {
    try {
      decoder.push(chunk, final);
    } catch (e) {
      throw badArchive('zstd', e);
    }
  };
  for await (const chunk of source) {
    push(chunk, false);
    yield* out.splice(0);
  }
  push(new Uint8Array(0), true);
  yield* out.splice(0);
}

async function* bunzip2(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const out: Uint8Array[] = [];
  let failure: unknown;
  const unbzip2Stream = (await import('unbzip2-stream')).default;
  const decoder = unbzip2Stream();
  decoder.on('data', (chunk: Uint8Array) => out.push(chunk));
  decoder.on('error', (e: unknown) => {
    failure ??= e;
  });
  for await (const chunk of source) {
    decoder.write(chunk);
    if (failure !== undefined) throw badArchive('bzip2', failure);
    yield* out.splice(0);
  }
  decoder.end();
  if (failure !== undefined) throw badArchive('bzip2', failure);
  yield* out.splice(0);
}
