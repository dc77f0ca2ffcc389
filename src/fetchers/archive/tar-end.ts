/**
 * Where a tar stream ends as libarchive (and so Nix) reads it: at the first
 * header block that is all zeros. The end-of-archive marker is two such
 * blocks, but libarchive stops at the first and never reads what follows:
 * more members, junk, the rest of a record. tar-stream instead skips zero
 * blocks and reads on, so tar.ts passes the bytes through a `TarEnd` first,
 * which cuts them just after that block.
 *
 * To know where headers are, the walk mirrors how tar-stream (3.x,
 * extract.js and headers.js) finds the next one, so the two never disagree:
 * a member's data is its size (a preceding pax `size` record wins, merged
 * over the global one as tar-stream merges them) padded to 512 bytes;
 * directories (type 5, or type 0 with a name ending in `/`) and empty
 * members have none; GNU long names/links and pax headers carry their own
 * padded data; a block that is zero but for its checksum field is skipped
 * alone. A header whose size cannot be read (or a long header over 4 MiB)
 * makes tar-stream fail, so the walk just stops cutting there.
 */

const EMPTY = new Uint8Array(0);
/** tar-stream's MAX_HEADER_SIZE for GNU long names and pax data. */
const MAX_LONG_HEADER = 4 * 1024 * 1024;

const TYPE_DIRECTORY = 5;
const TYPE_GNU_LONG_LINK = 27; // 'K' - '0'
const TYPE_GNU_LONG_PATH = 28; // 'L' - '0'
const TYPE_GNU_LONG_PATH_OLD = 30; // 'N' - '0'
const TYPE_PAX_GLOBAL = 55; // 'g' - '0'
const TYPE_PAX = 72; // 'x' - '0'

export class TarEnd {
  /** Set once the end-of-archive block has been passed on: everything after it is dropped. */
  ended = false;
  /** The walk could not follow the archive (tar-stream fails on it): pass everything. */
  private lost = false;
  /** Bytes of data (and padding) before the next header. */
  private skip = 0;
  private readonly header = new Uint8Array(512);
  private headerLength = 0;
  /** The data of a pax header being read: its `size` record applies to what follows. */
  private pax: { global: boolean; left: number; parts: Uint8Array[] } | undefined;
  private globalPaxSize: string | undefined;
  /** The `size` of the last pax header ('x'), for the next member. */
  private pendingPaxSize: { value: string | undefined } | undefined;

  /** The part of `chunk` up to and including the end-of-archive block (all of it before the end). */
  take(chunk: Uint8Array): Uint8Array {
    if (this.ended) return EMPTY;
    let at = 0;
    while (at < chunk.length && !this.lost) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        if (this.pax !== undefined && this.pax.left > 0) {
          const data = chunk.subarray(at, at + Math.min(n, this.pax.left));
          this.pax.parts.push(data);
          this.pax.left -= data.length;
          if (this.pax.left === 0) this.paxDone();
        }
        this.skip -= n;
        at += n;
        continue;
      }
      const n = Math.min(512 - this.headerLength, chunk.length - at);
      this.header.set(chunk.subarray(at, at + n), this.headerLength);
      this.headerLength += n;
      at += n;
      if (this.headerLength < 512) break;
      this.headerLength = 0;
      if (this.header.every((b) => b === 0)) {
        this.ended = true;
        return chunk.subarray(0, at);
      }
      this.onHeader();
    }
    return chunk;
  }

  private onHeader(): void {
    const h = this.header;
    // tar-stream's "null" header: zero outside the checksum field; it skips the block.
    if (h.every((b, i) => b === 0 || (i >= 148 && i < 156))) return;
    const type = h[156] === 0 ? 0 : h[156]! - 48;
    const size = decodeOctal(h.subarray(124, 136));
    if (
      type === TYPE_GNU_LONG_LINK ||
      type === TYPE_GNU_LONG_PATH ||
      type === TYPE_GNU_LONG_PATH_OLD ||
      type === TYPE_PAX ||
      type === TYPE_PAX_GLOBAL
    ) {
      if (!(size >= 0) || size > MAX_LONG_HEADER) {
        this.lost = true;
        return;
      }
      this.skip = size + padding(size);
      if (type === TYPE_PAX || type === TYPE_PAX_GLOBAL) {
        this.pax = { global: type === TYPE_PAX_GLOBAL, left: size, parts: [] };
        if (size === 0) this.paxDone();
      }
      return;
    }
    let dataSize = size;
    if (this.pendingPaxSize !== undefined) {
      const pax = this.pendingPaxSize.value;
      if (pax) dataSize = Number.parseInt(pax, 10);
      this.pendingPaxSize = undefined;
    }
    if (!(dataSize >= 0)) {
      this.lost = true;
      return;
    }
    const directory = type === TYPE_DIRECTORY || (type === 0 && nameEndsWithSlash(h));
    if (dataSize === 0 || directory) return;
    this.skip = dataSize + padding(dataSize);
  }

  private paxDone(): void {
    const pax = this.pax!;
    this.pax = undefined;
    const size = paxSizeRecord(Buffer.concat(pax.parts));
    if (pax.global) this.globalPaxSize = size.value;
    else this.pendingPaxSize = size.found ? { value: size.value } : { value: this.globalPaxSize };
  }
}

function padding(size: number): number {
  const rest = size % 512;
  return rest === 0 ? 0 : 512 - rest;
}

/** tar-stream's decodeOct: base-256 when the high bit is set, else octal digits after spaces and NULs. */
function decodeOctal(field: Uint8Array): number {
  if (field[0]! & 0x80) {
    if (field[0] !== 0x80 && field[0] !== 0xff) return Number.NaN;
    const positive = field[0] === 0x80;
    let sum = 0;
    for (let i = 1; i < field.length; i++) sum = sum * 256 + (positive ? field[i]! : 0xff - field[i]!);
    return positive ? sum : -sum;
  }
  let start = 0;
  while (start < field.length && field[start] === 0x20) start++;
  let end = field.indexOf(0x20, start);
  if (end < 0) end = field.length;
  while (start < end && field[start] === 0) start++;
  if (start === end) return 0;
  return Number.parseInt(Buffer.from(field.subarray(start, end)).toString('utf8'), 8);
}

/** tar-stream's name test: the name (after a ustar prefix) ends in `/`. */
function nameEndsWithSlash(h: Uint8Array): boolean {
  let nameEnd = h.subarray(0, 100).indexOf(0);
  if (nameEnd < 0) nameEnd = 100;
  const ustar = [0x75, 0x73, 0x74, 0x61, 0x72, 0x00].every((b, i) => h[257 + i] === b);
  if (ustar && h[345] !== 0) return nameEnd === 0 || h[nameEnd - 1] === 0x2f;
  return nameEnd > 0 && h[nameEnd - 1] === 0x2f;
}

/** The `size` record of pax data, parsed as tar-stream's decodePax parses records. */
function paxSizeRecord(data: Buffer): { found: boolean; value: string | undefined } {
  let found = false;
  let value: string | undefined;
  let buf = data;
  while (buf.length > 0) {
    let i = 0;
    while (i < buf.length && buf[i] !== 0x20) i++;
    const length = Number.parseInt(buf.subarray(0, i).toString('utf8'), 10);
    if (!length) break;
    const record = buf.subarray(i + 1, length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq === -1) break;
    if (record.slice(0, eq) === 'size') {
      found = true;
      value = record.slice(eq + 1);
    }
    buf = buf.subarray(length);
  }
  return { found, value };
}
