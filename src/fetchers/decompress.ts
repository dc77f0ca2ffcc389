/**
 * Transparent decompression of a downloaded byte stream, chosen by the magic
 * bytes at its start as snix's `DecompressedReader` does (snix-reference.md
 * §6.5; the URL's extension is irrelevant): gzip `1f 8b`, bzip2 `BZh`, xz
 * `fd 37 7a 58 5a 00`, zstd `28 b5 2f fd`; anything else passes through
 * unchanged (plain `.nar`, plain `.tar`). Used by the NAR and tarball
 * fetchers and by uploads. Corrupt or truncated compressed data is
 * ERR_BAD_ARCHIVE; errors of the source itself (ERR_HTTP …) pass through
 * untouched.
 *
 * Every decoder checks what its format carries, as `gzip -t`, `bzip2 -t`,
 * `xz -t` and `zstd -t` do: gzip the CRC-32 and size of each member (zlib),
 * xz its block checks (liblzma), bzip2 the CRC of every block and stream,
 * zstd each frame's content checksum (XXH64, xxh64.ts; fzstd skips it) and
 * declared content size. A zstd frame that needs a window over 128 MiB is
 * refused, as libzstd (and so Nix's libarchive) refuses it by default.
 *
 * Every decoder streams with bounded buffering: zlib and lzma-native are
 * Node transforms driven through `pipeline`; zstd frames are split into
 * blocks (at most 128 KiB each) here and decoded by fzstd; bzip2 blocks
 * (at most ~1 MiB compressed) are decoded by unbzip2-stream's block decoder
 * once a whole block is buffered.
 */

import type { Transform } from 'node:stream';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { FetchCacheError } from '../errors.js';
import { Xxh64 } from './xxh64.js';

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
  const reader = new ByteReader(source[Symbol.asyncIterator]());
  let kind: Compression = 'none';
  try {
    kind = sniffCompression(await reader.peek(6));
    switch (kind) {
      case 'none':
        yield* reader.chunks();
        return;
      case 'gzip':
        yield* throughTransform(reader.chunks(), createGunzip());
        return;
      case 'xz':
        // Decoders load on first use: most fetches need at most one of them.
        yield* throughTransform(reader.chunks(), (await import('lzma-native')).createDecompressor());
        return;
      case 'zstd':
        yield* unzstd(reader);
        return;
      case 'bzip2':
        yield* bunzip2(reader);
        return;
    }
  } catch (e) {
    throw reader.isSourceError(e) ? e : badArchive(kind, e);
  } finally {
    await reader.close();
  }
}

function badArchive(kind: Compression, e: unknown): unknown {
  if (e instanceof FetchCacheError) return e;
  const why = e instanceof Error ? e.message : String(e);
  return new FetchCacheError('ERR_BAD_ARCHIVE', `corrupt or truncated ${kind} data: ${why}`, { cause: e });
}

function truncated(kind: Compression, where: string): FetchCacheError {
  return new FetchCacheError('ERR_BAD_ARCHIVE', `truncated ${kind} data: the input ends ${where}`);
}

/** Pull-based reading of the source with look-ahead; remembers the source's own failure. */
class ByteReader {
  private readonly pending: Uint8Array[] = [];
  private failure: { error: unknown } | undefined;

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  /** The next non-empty chunk, or undefined at the end of the input. */
  async next(): Promise<Uint8Array | undefined> {
    const p = this.pending.shift();
    if (p !== undefined) return p;
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await this.it.next();
      } catch (e) {
        this.failure = { error: e };
        throw e;
      }
      if (r.done) return undefined;
      if (r.value.length > 0) return r.value;
    }
  }

  /** Give bytes back: the next read starts with them. */
  unread(bytes: Uint8Array): void {
    if (bytes.length > 0) this.pending.unshift(bytes);
  }

  /** `n` bytes, or fewer when the input ends first. */
  async take(n: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let length = 0;
    while (length < n) {
      let chunk = await this.next();
      if (chunk === undefined) break;
      if (chunk.length > n - length) {
        this.unread(chunk.subarray(n - length));
        chunk = chunk.subarray(0, n - length);
      }
      parts.push(chunk);
      length += chunk.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** The next `n` bytes (fewer at the end of the input), left to be read again. */
  async peek(n: number): Promise<Uint8Array> {
    const bytes = await this.take(n);
    this.unread(bytes);
    return bytes;
  }

  async *chunks(): AsyncGenerator<Uint8Array> {
    for (let c = await this.next(); c !== undefined; c = await this.next()) yield c;
  }

  isSourceError(e: unknown): boolean {
    return this.failure !== undefined && this.failure.error === e;
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

async function* throughTransform(
  source: AsyncIterable<Uint8Array>,
  transform: Transform,
): AsyncGenerator<Uint8Array> {
  // The source's own error (e.g. ERR_HTTP) reaches us through `pipeline`, which destroys the transform with it.
  const done = pipeline(Readable.from(source, { objectMode: false }), transform);
  done.catch(() => {});
  try {
    for await (const chunk of transform as AsyncIterable<Buffer>) yield chunk;
    await done;
  } catch (e) {
    throw (
      (await done.then(
        () => e,
        (err: unknown) => err,
      )) ?? e
    );
  } finally {
    transform.destroy();
  }
}

// --- zstd (RFC 8878) ---

const ZSTD_MAGIC = 0xfd2fb528;
/** libzstd's default limit for decoding (ZSTD_WINDOWLOG_LIMIT_DEFAULT = 27). */
const ZSTD_MAX_WINDOW = 1 << 27;
const ZSTD_MAX_BLOCK = 128 << 10;

/** Exactly `n` bytes, else a truncation error naming `where`. */
async function need(r: ByteReader, n: number, kind: Compression, where: string): Promise<Uint8Array> {
  const bytes = await r.take(n);
  if (bytes.length < n) throw truncated(kind, where);
  return bytes;
}

const u32le = (b: Uint8Array, at = 0): number =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

/** Frames one after another (skippable ones skipped), each decoded by fzstd and checked here. */
async function* unzstd(r: ByteReader): AsyncGenerator<Uint8Array> {
  const { Decompress } = await import('fzstd');
  for (let frame = 0; ; frame++) {
    const magic = await r.take(4);
    if (magic.length === 0 && frame > 0) return;
    if (magic.length < 4) throw truncated('zstd', 'inside a frame header');
    const m = u32le(magic);
    if ((m & 0xfffffff0) >>> 0 === 0x184d2a50) {
      const size = u32le(await need(r, 4, 'zstd', 'inside a skippable frame'));
      for (let left = size; left > 0; ) {
        const skipped = await need(r, Math.min(left, 1 << 16), 'zstd', 'inside a skippable frame');
        left -= skipped.length;
      }
      continue;
    }
    if (m !== ZSTD_MAGIC) throw new Error(`unknown frame descriptor after frame ${frame}`);
    const descriptor = (await need(r, 1, 'zstd', 'inside a frame header'))[0]!;
    if (descriptor & 0x08) throw new Error('reserved bit set in a frame header');
    const single = (descriptor & 0x20) !== 0;
    const hasChecksum = (descriptor & 0x04) !== 0;
    const dictBytes = [0, 1, 2, 4][descriptor & 3]!;
    const sizeFlag = descriptor >> 6;
    const sizeBytes = sizeFlag === 0 ? (single ? 1 : 0) : [0, 2, 4, 8][sizeFlag]!;
    const rest = await need(r, (single ? 0 : 1) + dictBytes + sizeBytes, 'zstd', 'inside a frame header');
    let contentSize: number | undefined;
    if (sizeBytes > 0) {
      let v = 0;
      for (let i = sizeBytes - 1; i >= 0; i--) v = v * 256 + rest[rest.length - sizeBytes + i]!;
      contentSize = sizeFlag === 1 ? v + 256 : v;
    }
    let window = contentSize ?? 0;
    if (!single) {
      const base = 2 ** (10 + (rest[0]! >> 3));
      window = base + (base / 8) * (rest[0]! & 7);
    }
    if (window > ZSTD_MAX_WINDOW) {
      throw new Error(
        `a frame needs a window of ${window} bytes, more than the 128 MiB zstd decodes by default`,
      );
    }
    const out: Uint8Array[] = [];
    const hash = hasChecksum ? new Xxh64() : undefined;
    let produced = 0;
    const decoder = new Decompress((chunk) => {
      out.push(chunk);
      hash?.update(chunk);
      produced += chunk.length;
    });
    decoder.push(Buffer.concat([magic, Uint8Array.of(descriptor), rest]), false);
    for (let last = false; !last; ) {
      const header = await need(r, 3, 'zstd', 'inside a block');
      const v = header[0]! | (header[1]! << 8) | (header[2]! << 16);
      last = (v & 1) === 1;
      const type = (v >> 1) & 3;
      const size = v >>> 3;
      if (type === 3) throw new Error('reserved block type');
      if (size > ZSTD_MAX_BLOCK) throw new Error(`a block of ${size} bytes (more than 128 KiB)`);
      decoder.push(header, false);
      decoder.push(await need(r, type === 1 ? 1 : size, 'zstd', 'inside a block'), false);
      yield* out.splice(0);
    }
    if (contentSize !== undefined && produced !== contentSize) {
      throw new Error(`a frame declares ${contentSize} bytes of content but holds ${produced}`);
    }
    if (hash !== undefined) {
      const expected = u32le(await need(r, 4, 'zstd', 'inside a frame checksum'));
      if (Number(hash.digest() & 0xffffffffn) !== expected) {
        throw new Error("restored data doesn't match the frame's content checksum");
      }
    }
  }
}

// --- bzip2 ---

/** unbzip2-stream's block decoder (lib/bzip2.js): synchronous, reads bits through `bits`. */
interface Bzip2Blocks {
  /** Reads `BZh` and the level digit; the block size is 100000 × level. */
  header(bits: BitSource): number;
  /** One block into `out`, returning the running stream CRC; null at the end-of-stream marker (CRC checked). */
  decompress(
    bits: BitSource,
    out: (byte: number) => void,
    buf: Int32Array,
    bufsize: number,
    streamCRC: number,
  ): number | null;
}
/** `bits(n)` reads n bits MSB first; `bits(null)` skips to the next byte boundary. */
type BitSource = (n: number | null) => number;

const NEED_MORE = new Error('bzip2 decoder needs more input');
const BITMASK = [0, 0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

/** The buffered input of the bzip2 decoder, read bit by bit; throws NEED_MORE past its end. */
class BitInput {
  private bytes: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private bit = 0;

  readonly bits: BitSource = (n) => {
    if (n === null) {
      if (this.bit !== 0) {
        this.bit = 0;
        this.pos++;
      }
      return 0;
    }
    let result = 0;
    while (n > 0) {
      if (this.pos >= this.bytes.length) throw NEED_MORE;
      const left = 8 - this.bit;
      const byte = this.bytes[this.pos]!;
      if (n >= left) {
        result = (result << left) | (byte & BITMASK[left]!);
        this.pos++;
        this.bit = 0;
        n -= left;
      } else {
        result = (result << n) | ((byte >> (left - n)) & BITMASK[n]!);
        this.bit += n;
        n = 0;
      }
    }
    return result;
  };

  /** Whole bytes not yet read. */
  get available(): number {
    return this.bytes.length - this.pos;
  }

  append(chunks: Uint8Array[]): void {
    this.bytes = Buffer.concat([this.bytes.subarray(this.pos), ...chunks]);
    this.pos = 0;
  }

  mark(): [number, number] {
    return [this.pos, this.bit];
  }

  restore([pos, bit]: [number, number]): void {
    this.pos = pos;
    this.bit = bit;
  }

  /** The byte-aligned bytes not yet read. */
  rest(): Uint8Array {
    return this.bytes.subarray(this.pos + (this.bit === 0 ? 0 : 1));
  }
}

/** Streams one after another, blocks decoded once buffered whole (a block can take ~1 MiB). */
async function* bunzip2(r: ByteReader): AsyncGenerator<Uint8Array> {
  const blocks = (await import('unbzip2-stream/lib/bzip2.js')).default as Bzip2Blocks;
  const input = new BitInput();
  let ended = false;
  const fill = async (want: number): Promise<void> => {
    const chunks: Uint8Array[] = [];
    for (let have = input.available; have < want && !ended; ) {
      const chunk = await r.next();
      if (chunk === undefined) ended = true;
      else {
        chunks.push(chunk);
        have += chunk.length;
      }
    }
    if (chunks.length > 0) input.append(chunks);
  };
  // Run a synchronous decoding step; if it runs out of input, buffer more and run it again from the same bit.
  const step = async <T>(run: () => T, want: number, where: string): Promise<T> => {
    await fill(want);
    for (;;) {
      const mark = input.mark();
      try {
        return run();
      } catch (e) {
        if (e !== NEED_MORE) throw e;
        input.restore(mark);
        if (ended) throw truncated('bzip2', where);
        await fill(input.available + (1 << 20));
      }
    }
  };
  for (let stream = 0; ; stream++) {
    if (stream > 0) {
      // Another stream follows only if it starts like one; anything else after a stream is ignored (libarchive).
      await fill(10);
      if (!startsBzip2Stream(input.rest())) return;
    }
    const level = await step(() => blocks.header(input.bits), 4, 'inside a stream header');
    const bufsize = 100_000 * level;
    const buf = new Int32Array(bufsize);
    let crc = 0;
    for (;;) {
      const out: number[] = [];
      const next = await step(
        () => {
          out.length = 0;
          return blocks.decompress(input.bits, (b) => out.push(b), buf, bufsize, crc);
        },
        bufsize + 25_000,
        'inside a block',
      );
      if (out.length > 0) yield Buffer.from(out);
      if (next === null) break;
      crc = next;
    }
  }
}

const BZIP2_BLOCK_MAGIC = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
const BZIP2_END_MAGIC = [0x17, 0x72, 0x45, 0x38, 0x50, 0x90];

/** `BZh`, a level digit and a block or end-of-stream marker: what libarchive takes for a next stream. */
function startsBzip2Stream(b: Uint8Array): boolean {
  if (b.length < 10 || b[0] !== 0x42 || b[1] !== 0x5a || b[2] !== 0x68 || b[3]! < 0x31 || b[3]! > 0x39) {
    return false;
  }
  const marker = b.subarray(4, 10);
  return [BZIP2_BLOCK_MAGIC, BZIP2_END_MAGIC].some((m) => m.every((x, i) => marker[i] === x));
}
