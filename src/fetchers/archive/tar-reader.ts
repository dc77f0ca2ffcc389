/**
 * A pull reader of (decompressed) tar bytes: one member at a time, its data
 * handed out as views of the input chunks (no copies, no stream per member).
 * Reads ustar, GNU (long names and long links, `L`/`N` and `K`) and pax
 * (`x`, merged over the last global `g`) headers and v7 archives without a
 * magic. What it accepts is what tar-stream 3 accepted here before, header
 * for header: the checksum is checked; a block that is zero but for its
 * checksum field is skipped; the ustar prefix is prepended to the name; a
 * type-0 member whose header name ends in `/` is a directory; directories and
 * empty members have no data; a pax `size` overrides the header's; sizes may
 * be base-256; GNU long names and pax data over 4 MiB are refused.
 *
 * The archive ends as libarchive (and so Nix) reads it: at its first header
 * block that is all zeros. Nothing after that block is read — more members,
 * junk, the rest of the record, the rest of the input chunk. Input that ends
 * at a header boundary ends the archive too; input that ends anywhere else
 * is a truncated archive. Every problem is ERR_BAD_ARCHIVE; errors of the
 * input itself pass through unchanged.
 */

import type { ByteBudget } from './budget.js';
import { badArchive } from './path.js';

export const TYPE_FILE = 0;
export const TYPE_HARD_LINK = 1;
export const TYPE_SYMLINK = 2;
export const TYPE_DIRECTORY = 5;
export const TYPE_CONTIGUOUS = 7;
const TYPE_GNU_LONG_LINK = 27; // 'K' - '0'
const TYPE_GNU_LONG_PATH = 28; // 'L' - '0'
const TYPE_GNU_LONG_PATH_OLD = 30; // 'N' - '0'
const TYPE_PAX_GLOBAL = 55; // 'g' - '0'
const TYPE_PAX = 72; // 'x' - '0'

/** Longest GNU long name or pax data accepted (tar-stream's MAX_HEADER_SIZE). */
const MAX_LONG_HEADER = 4 * 1024 * 1024;
const BLOCK = 512;
const EMPTY = new Uint8Array(0);

export interface TarHeader {
  /** The member's name: raw header bytes (ustar prefix included), a GNU long name, or a pax `path` (UTF-8). */
  readonly name: Uint8Array;
  /** The link target, the same way; `undefined` when there is none. */
  readonly linkname: Uint8Array | undefined;
  /** The type flag as a number (`'0'` is 0, `'x'` is 72; NUL is 0), 5 for a type-0 name ending in `/`. */
  readonly type: number;
  readonly mode: number;
  /** Bytes of data (a pax `size` wins). */
  readonly size: number;
  /** Seconds since the epoch: a pax `mtime` (floored) wins over the header field. */
  readonly mtime: number;
}

export interface TarMember {
  readonly header: TarHeader;
  /** The member's data, iterated at most once and before the next member is asked for; each view stays valid. */
  readonly data: AsyncIterable<Uint8Array>;
}

const NO_DATA: AsyncIterable<Uint8Array> = {
  [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }),
};

export class TarReader {
  private chunk: Uint8Array = EMPTY;
  private at = 0;
  /** Bytes of the current member (data and padding) not read yet. */
  private left = 0;
  private ended = false;
  private paxGlobal: Map<string, string> | undefined;

  /** `budget` counts every input byte pulled. */
  constructor(
    private readonly input: AsyncIterator<Uint8Array>,
    private readonly budget: ByteBudget,
  ) {}

  /** The next member, or `undefined` at the end of the archive. */
  async next(): Promise<TarMember | undefined> {
    if (this.ended) return undefined;
    await this.skip(this.left);
    this.left = 0;
    let gnuPath: Uint8Array | undefined;
    let gnuLink: Uint8Array | undefined;
    let pax: Map<string, string> | undefined;
    for (;;) {
      if (!(await this.fill())) {
        this.ended = true;
        return undefined;
      }
      const h = await this.take(BLOCK);
      let all = 0;
      for (let i = 0; i < BLOCK; i++) all += h[i]!;
      if (all === 0) {
        this.ended = true;
        return undefined;
      }
      let sum = all + 8 * 32; // the checksum field counts as spaces
      for (let i = 148; i < 156; i++) sum -= h[i]!;
      if (sum === 8 * 32) continue; // zero but for the checksum field: skipped
      if (sum !== decodeNumber(h, 148, 8))
        throw badArchive('not a valid tar archive (header checksum mismatch)');
      let type = h[156] === 0 ? 0 : h[156]! - 48;
      const size = decodeNumber(h, 124, 12);
      if (
        type === TYPE_GNU_LONG_PATH ||
        type === TYPE_GNU_LONG_PATH_OLD ||
        type === TYPE_GNU_LONG_LINK ||
        type === TYPE_PAX ||
        type === TYPE_PAX_GLOBAL
      ) {
        if (!(size >= 0) || size > MAX_LONG_HEADER) {
          throw badArchive(`not a valid tar archive (a long name or pax header of ${size} bytes)`);
        }
        const data = Buffer.from(await this.take(size));
        await this.skip(padding(size));
        if (type === TYPE_GNU_LONG_LINK) gnuLink = untilNul(data);
        else if (type === TYPE_PAX_GLOBAL) this.paxGlobal = decodePax(data);
        else if (type === TYPE_PAX) pax = new Map([...(this.paxGlobal ?? []), ...decodePax(data)]);
        else gnuPath = untilNul(data);
        continue;
      }
      let name: Uint8Array = untilNul(h.subarray(0, 100));
      if (isUstar(h) && h[345] !== 0) name = Buffer.concat([untilNul(h.subarray(345, 500)), SLASH, name]);
      if (type === TYPE_FILE && name.length > 0 && name[name.length - 1] === 0x2f) type = TYPE_DIRECTORY;
      let linkname: Uint8Array | undefined = h[157] === 0 ? undefined : untilNul(h.subarray(157, 257));
      let mtime = decodeNumber(h, 136, 12);
      let dataSize = size;
      if (gnuPath !== undefined) name = gnuPath;
      if (gnuLink !== undefined) linkname = gnuLink;
      if (pax !== undefined) {
        const path = pax.get('path');
        const link = pax.get('linkpath');
        const paxSize = pax.get('size');
        const paxMtime = pax.get('mtime');
        if (path) name = Buffer.from(path, 'utf8');
        if (link) linkname = Buffer.from(link, 'utf8');
        if (paxSize) dataSize = Number.parseInt(paxSize, 10);
        if (paxMtime !== undefined && Number.isFinite(Number.parseFloat(paxMtime))) {
          mtime = Number.parseFloat(paxMtime);
        }
      }
      if (!(dataSize >= 0)) throw badArchive('not a valid tar archive (a member of no readable size)');
      const header: TarHeader = {
        name,
        linkname,
        type,
        mode: decodeNumber(h, 100, 8),
        size: dataSize,
        mtime: Math.floor(mtime),
      };
      if (dataSize === 0 || type === TYPE_DIRECTORY) return { header, data: NO_DATA };
      this.left = dataSize + padding(dataSize);
      return { header, data: this.data(dataSize) };
    }
  }

  /** `size` bytes of data as views of the input; the padding after them is skipped by `next()`. */
  private async *data(size: number): AsyncGenerator<Uint8Array> {
    let rest = size;
    while (rest > 0) {
      if (!(await this.fill())) throw truncated();
      const n = Math.min(rest, this.chunk.length - this.at);
      const view = this.chunk.subarray(this.at, this.at + n);
      this.at += n;
      rest -= n;
      this.left -= n;
      yield view;
    }
  }

  /** Make sure unread input is at hand; false at the end of the input. */
  private async fill(): Promise<boolean> {
    while (this.at >= this.chunk.length) {
      const r = await this.input.next();
      if (r.done) return false;
      this.budget.take(r.value.length);
      this.chunk = r.value;
      this.at = 0;
    }
    return true;
  }

  /** The next `n` bytes (a view when one chunk holds them). */
  private async take(n: number): Promise<Uint8Array> {
    if (!(await this.fill())) throw truncated();
    if (this.chunk.length - this.at >= n) {
      const view = this.chunk.subarray(this.at, this.at + n);
      this.at += n;
      return view;
    }
    const out = new Uint8Array(n);
    for (let got = 0; got < n; ) {
      if (!(await this.fill())) throw truncated();
      const k = Math.min(n - got, this.chunk.length - this.at);
      out.set(this.chunk.subarray(this.at, this.at + k), got);
      this.at += k;
      got += k;
    }
    return out;
  }

  private async skip(n: number): Promise<void> {
    for (let rest = n; rest > 0; ) {
      if (!(await this.fill())) throw truncated();
      const k = Math.min(rest, this.chunk.length - this.at);
      this.at += k;
      rest -= k;
    }
  }
}

const SLASH = Buffer.from('/');

function truncated() {
  return badArchive('not a valid tar archive (unexpected end of data)');
}

function padding(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

/** The bytes up to the first NUL. */
function untilNul(field: Uint8Array): Buffer {
  const end = field.indexOf(0);
  return Buffer.from(field.subarray(0, end < 0 ? field.length : end));
}

function isUstar(h: Uint8Array): boolean {
  return (
    h[257] === 0x75 &&
    h[258] === 0x73 &&
    h[259] === 0x74 &&
    h[260] === 0x61 &&
    h[261] === 0x72 &&
    h[262] === 0
  );
}

/**
 * A numeric field as tar-stream decodes it: base-256 when the high bit is set (0x80 positive, 0xff
 * negative, else unreadable: NaN), else octal digits after leading spaces and NULs, up to a space.
 */
function decodeNumber(h: Uint8Array, offset: number, length: number): number {
  const stop = offset + length;
  const first = h[offset]!;
  if (first & 0x80) {
    if (first !== 0x80 && first !== 0xff) return Number.NaN;
    const positive = first === 0x80;
    let sum = 0;
    for (let i = offset + 1; i < stop; i++) sum = sum * 256 + (positive ? h[i]! : 0xff - h[i]!);
    return positive ? sum : -sum;
  }
  let start = offset;
  while (start < stop && h[start] === 0x20) start++;
  let end = start;
  while (end < stop && h[end] !== 0x20) end++;
  while (start < end && h[start] === 0) start++;
  if (start === end) return 0;
  if (h[start]! < 0x30 || h[start]! > 0x37) {
    return Number.parseInt(Buffer.from(h.subarray(start, end)).toString('latin1'), 8);
  }
  // parseInt(…, 8) of a string that starts with a digit: the digits up to the first other byte.
  let n = 0;
  for (let i = start; i < end && h[i]! >= 0x30 && h[i]! <= 0x37; i++) n = n * 8 + h[i]! - 0x30;
  return n;
}

/** pax records (`<length> <key>=<value>\n`), read as tar-stream reads them: UTF-8, stopping at the first bad one. */
function decodePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let buf = data;
  while (buf.length > 0) {
    let i = 0;
    while (i < buf.length && buf[i] !== 0x20) i++;
    const length = Number.parseInt(buf.subarray(0, i).toString('utf8'), 10);
    if (!length) break;
    const record = buf.subarray(i + 1, length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq === -1) break;
    out.set(record.slice(0, eq), record.slice(eq + 1));
    buf = buf.subarray(length);
  }
  return out;
}
