/**
 * Transparent decompression of a downloaded byte stream, chosen by the magic
 * bytes at its start as snix's `DecompressedReader` does (snix
 * `glue/src/fetchers/decompression.rs`; the URL's extension is irrelevant): gzip `1f 8b`, bzip2 `BZh`, xz
 * `fd 37 7a 58 5a 00`, zstd `28 b5 2f fd`; anything else passes through
 * unchanged (plain `.nar`, plain `.tar`). Used by the NAR and tarball
 * fetchers and by uploads. Corrupt or truncated compressed data is
 * ERR_BAD_ARCHIVE; errors of the source itself (ERR_HTTP …) pass through
 * untouched.
 *
 * Every decoder checks what its format carries, as `gzip -t`, `bzip2 -t`,
 * `xz -t` and `zstd -t` do: gzip the CRC-32 and size of each member (and its header CRC),
 * xz its block checks (liblzma), bzip2 the CRC of every block and stream,
 * zstd each frame's content checksum (XXH64, xxh64.ts; fzstd skips it) and
 * declared content size. A zstd frame that needs a window over 128 MiB is
 * refused, as libzstd (and so Nix's libarchive) refuses it by default.
 *
 * What follows a compressed unit is read as libarchive (Nix 2.8) reads it:
 * gzip members and bzip2 streams go on only while the next bytes start like
 * one (anything else after them is ignored); zstd frames and xz streams go on
 * to the end of the input (junk after them is an error). `finish()` lets a
 * reader that knows where its data ends (a tar's end-of-archive block) stop
 * there: see `Decompressed`.
 *
 * Every decoder streams with bounded buffering: gzip members are inflated by
 * zlib (raw deflate, header and trailer handled here) with backpressure, xz
 * by lzma-native through `pipeline`; zstd frames are split into blocks (at
 * most 128 KiB each) here and decoded by fzstd; bzip2 blocks (at most ~1 MiB
 * compressed) are decoded by unbzip2-stream's block decoder once a whole
 * block is buffered.
 */

import type { Transform } from 'node:stream';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32, createBrotliDecompress, createInflate, createInflateRaw } from 'node:zlib';
import { FetchCacheError } from '../errors.js';
import { Xxh64 } from './xxh64.js';

export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

const MAGICS: readonly [Compression, readonly number[]][] = [
  ['gzip', [0x1f, 0x8b]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
];

/** Bytes zlib and liblzma hand out at a time (their defaults: 16 and 64 KiB). */
const INFLATE_CHUNK = 256 * 1024;

/** The compression whose magic `head` starts with (`none` when no magic matches). */
export function sniffCompression(head: Uint8Array): Compression {
  for (const [kind, magic] of MAGICS) {
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return kind;
  }
  return 'none';
}

/**
 * The decoded bytes of a stream, and how a reader that knows where its data ends stops reading it.
 * Iterate it once; or iterate part of it (without `return()`), then `finish()`.
 */
export interface Decompressed extends AsyncIterable<Uint8Array> {
  /**
   * The reader has all it wants (a tar reader at its end-of-archive marker): read on to the end of the
   * compressed unit that holds what it read, checking it, and ignore what follows, as libarchive (Nix)
   * does: the rest of the gzip member or bzip2 stream (later members, streams or junk are never read);
   * for zstd and xz, whose decoders libarchive runs on to the end of the input, every frame or stream
   * that is left (junk after them is refused). The output is discarded.
   */
  finish(): Promise<void>;
  /** Give up (the reader failed): stop reading the source. */
  close(): Promise<void>;
}

/** What `finish()` tells the decoders: stop at the end of the current unit. */
interface Control {
  last: boolean;
}

/** Decompress `source` according to its first bytes (which must show `expect`, when given). */
export function decompress(source: AsyncIterable<Uint8Array>, expect?: Compression): Decompressed {
  const control: Control = { last: false };
  const output = decode(new ByteReader(source[Symbol.asyncIterator]()), control, expect);
  return {
    [Symbol.asyncIterator]: () => output,
    async finish() {
      control.last = true;
      for (let r = await output.next(); !r.done; r = await output.next()) {
        // Checked and dropped.
      }
    },
    async close() {
      await output.return(undefined);
    },
  };
}

async function* decode(
  reader: ByteReader,
  control: Control,
  expect: Compression | undefined,
): AsyncGenerator<Uint8Array> {
  let kind: Compression = 'none';
  try {
    kind = sniffCompression(await reader.peek(6));
    if (expect !== undefined && kind !== expect) {
      throw new FetchCacheError('ERR_BAD_ARCHIVE', `the data is not ${expect}-compressed`);
    }
    switch (kind) {
      case 'none':
        while (!control.last) {
          const c = await reader.next();
          if (c === undefined) return;
          yield c;
        }
        return;
      case 'gzip':
        yield* gunzip(reader, control);
        return;
      case 'xz':
        // Decoders load on first use: most fetches need at most one of them.
        yield* throughTransform(
          reader.chunks(),
          (await import('lzma-native')).createDecompressor({ bufsize: INFLATE_CHUNK }),
        );
        return;
      case 'zstd':
        yield* unzstd(reader);
        return;
      case 'bzip2':
        yield* bunzip2(reader, control);
        return;
    }
  } catch (e) {
    throw reader.isSourceError(e) ? e : badArchive(kind, e);
  } finally {
    await reader.close();
  }
}

/** The HTTP content codings `decodeContentCoding` decodes. */
export const CONTENT_CODINGS: ReadonlySet<string> = new Set([
  'gzip',
  'x-gzip',
  'deflate',
  'br',
  'zstd',
  'xz',
  'bzip2',
]);

/**
 * The decoder of an HTTP content coding (RFC 9110 §8.4.1; what curl accepts): gzip (x-gzip), deflate
 * (zlib-wrapped, or raw deflate as some servers send it and curl takes it), br, zstd; also xz and bzip2,
 * which are no registered codings but which Nix decodes. Undefined for any other coding.
 */
export function decodeContentCoding(
  coding: string,
  source: AsyncIterable<Uint8Array>,
): AsyncIterable<Uint8Array> | undefined {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      return decompress(source, 'gzip');
    case 'zstd':
    case 'xz':
    case 'bzip2':
      return decompress(source, coding);
    case 'br':
      return throughTransform(source, createBrotliDecompress());
    case 'deflate':
      return inflateHttp(source);
    default:
      return undefined;
  }
}

/** HTTP `deflate`: a zlib stream (RFC 1950: CM 8, header check), else raw deflate. */
async function* inflateHttp(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(source[Symbol.asyncIterator]());
  try {
    const h = await reader.peek(2);
    const zlib = h.length === 2 && (h[0]! & 0x0f) === 8 && ((h[0]! << 8) | h[1]!) % 31 === 0;
    yield* throughTransform(reader.chunks(), zlib ? createInflate() : createInflateRaw());
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

// --- gzip (RFC 1952) ---

/**
 * Members one after another, each inflated by zlib (raw deflate) with its header parsed and its CRC-32 and
 * size checked here. Another member follows only if it starts like one (`1f 8b 08`, no reserved flags);
 * anything else after a member is ignored, as libarchive does (Node's gunzip refuses it).
 */
async function* gunzip(r: ByteReader, control: Control): AsyncGenerator<Uint8Array> {
  for (let member = 0; ; member++) {
    if (member > 0) {
      if (control.last) return;
      const next = await r.peek(4);
      if (next.length < 4 || next[0] !== 0x1f || next[1] !== 0x8b || next[2] !== 8 || next[3]! & 0xe0) return;
    }
    await gzipHeader(r);
    let crc = 0;
    let size = 0;
    for await (const chunk of inflateRaw(r)) {
      crc = crc32(chunk, crc);
      size = (size + chunk.length) % 2 ** 32;
      yield chunk;
    }
    const trailer = await need(r, 8, 'gzip', 'before the end of a member (CRC-32 and size)');
    if (u32le(trailer) !== crc >>> 0) throw new Error('incorrect data check (CRC-32)');
    if (u32le(trailer, 4) !== size) throw new Error('incorrect length check');
  }
}

const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;

/** Read and check one member header (its optional CRC-16 included). */
async function gzipHeader(r: ByteReader): Promise<void> {
  const fixed = await need(r, 10, 'gzip', 'inside a member header');
  if (fixed[0] !== 0x1f || fixed[1] !== 0x8b) throw new Error('incorrect header check');
  if (fixed[2] !== 8) throw new Error('unknown compression method');
  const flags = fixed[3]!;
  if (flags & 0xe0) throw new Error('reserved header flags set');
  let crc = crc32(fixed);
  const field = async (n: number) => {
    const bytes = await need(r, n, 'gzip', 'inside a member header');
    crc = crc32(bytes, crc);
    return bytes;
  };
  if (flags & FEXTRA) {
    const length = await field(2);
    await field(length[0]! | (length[1]! << 8));
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (!(flags & flag)) continue;
    // Zero-terminated.
    for (;;) {
      const chunk = await r.next();
      if (chunk === undefined) throw truncated('gzip', 'inside a member header');
      const end = chunk.indexOf(0);
      crc = crc32(end < 0 ? chunk : chunk.subarray(0, end + 1), crc);
      if (end < 0) continue;
      r.unread(chunk.subarray(end + 1));
      break;
    }
  }
  if (flags & FHCRC) {
    const stored = await need(r, 2, 'gzip', 'inside a member header');
    if ((stored[0]! | (stored[1]! << 8)) !== (crc & 0xffff)) throw new Error('header crc mismatch');
  }
}

/**
 * One raw deflate stream through zlib, chunk by chunk, with backpressure; what zlib did not consume
 * when the stream ended (the trailer and anything after it) goes back to `r`. zlib stops exactly at the
 * end of the deflate data, and the stream's `bytesWritten` counts what it consumed.
 */
async function* inflateRaw(r: ByteReader): AsyncGenerator<Uint8Array> {
  // 256 KiB pieces instead of zlib's 16 KiB: 16× fewer chunks through everything downstream.
  const inflate = createInflateRaw({ chunkSize: INFLATE_CHUNK });
  let failure: unknown;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  inflate.on('readable', poke);
  inflate.on('error', (e) => {
    failure ??= e;
    poke();
  });
  try {
    for (;;) {
      const chunk = await r.next();
      if (chunk === undefined) throw truncated('gzip', 'inside the compressed data of a member');
      const before = inflate.bytesWritten;
      let written = false;
      inflate.write(chunk, () => {
        written = true;
        poke();
      });
      // Take output while zlib works on the chunk: it waits for us when its buffer is full.
      for (;;) {
        if (failure !== undefined) throw failure;
        const out = inflate.read() as Buffer | null;
        if (out !== null) yield out;
        else if (written) break;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
      const consumed = inflate.bytesWritten - before;
      if (consumed < chunk.length) {
        // The deflate stream ended inside this chunk (or before it, when it ended exactly at the last one).
        r.unread(chunk.subarray(consumed));
        for (let out = inflate.read() as Buffer | null; out !== null; out = inflate.read() as Buffer | null) {
          yield out;
        }
        return;
      }
    }
  } finally {
    inflate.destroy();
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
async function* bunzip2(r: ByteReader, control: Control): AsyncGenerator<Uint8Array> {
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
      if (control.last) return;
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
