/**
 * A reader for one git packfile through its version-2 index, so objects are
 * found by binary search and read with one positioned read each (no whole-pack
 * load), with resolved delta bases kept in a small LRU.
 *
 * `.idx` v2 (gitformat-pack(5)): `\377tOc`, version 2, fan-out table of 256
 * big-endian u32 (cumulative counts by first id byte), N sorted 20-byte ids,
 * N CRC32s, N u32 offsets (high bit set: index into the following table of
 * u64 offsets), then checksums. `.pack` entry: a size/type varint (first byte
 * `1ttt ssss`: type in bits 4–6, low size bits; then 7 bits per byte), then
 * for OFS_DELTA (6) a negative base offset (big-endian base-128 with +1 per
 * continuation), for REF_DELTA (7) the base id, then zlib data. A delta is two
 * varint sizes and copy (`1xxxxxxx`: offset/size bytes by bit mask; size 0 =
 * 0x10000) / insert (`0nnnnnnn`: n literal bytes) instructions.
 */

import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { ByteLru } from '../../byte-lru.js';
import { FetchCacheError } from '../../errors.js';
import { type GitPack, gitPack } from '../../native/index.js';

export const OBJECT_TYPES = ['', 'commit', 'tree', 'blob', 'tag'] as const;

export interface PackedObject {
  readonly type: string;
  readonly data: Uint8Array;
}

/** The addon's inflate, looked up on first use (a fetch-index hit never loads the addon). */
let nativeInflate: GitPack['inflateExact'] | null | undefined;
function inflateExact(data: Uint8Array, size: number): Buffer | undefined {
  nativeInflate ??= gitPack()?.inflateExact ?? null;
  return nativeInflate === null ? undefined : nativeInflate(data, size);
}

export function badPack(file: string, why: string): FetchCacheError {
  return new FetchCacheError('ERR_GIT', `corrupt git pack '${file}': ${why}`, { path: file });
}

export class PackFile {
  private readonly fanout: Uint32Array;
  private readonly ids: Buffer;
  private readonly offsets: number[];
  /** Entry offsets in pack order, to know where each entry's data ends. */
  private readonly sortedOffsets: Float64Array;
  private readonly packSize: number;
  private fd: number | undefined;
  /** Resolved delta bases by offset, up to 64 MiB. */
  private readonly bases = new BaseCache(64 << 20);

  constructor(
    readonly idxFile: string,
    readonly packFile: string,
    /** Looks up a REF_DELTA base outside this pack. */
    private readonly external: (oid: string) => PackedObject | undefined,
  ) {
    const idx = readFileSync(idxFile);
    if (idx.readUInt32BE(0) !== 0xff744f63 || idx.readUInt32BE(4) !== 2)
      throw badPack(idxFile, 'not a version 2 index');
    this.fanout = new Uint32Array(256);
    for (let i = 0; i < 256; i++) this.fanout[i] = idx.readUInt32BE(8 + i * 4);
    const n = this.fanout[255]!;
    const idsAt = 8 + 256 * 4;
    this.ids = idx.subarray(idsAt, idsAt + n * 20);
    const offAt = idsAt + n * 24;
    const bigAt = offAt + n * 4;
    this.offsets = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const v = idx.readUInt32BE(offAt + i * 4);
      this.offsets[i] = v & 0x80000000 ? Number(idx.readBigUInt64BE(bigAt + (v & 0x7fffffff) * 8)) : v;
    }
    this.sortedOffsets = Float64Array.from(this.offsets).sort();
    this.packSize = statSync(packFile).size;
  }

  /** Index of `oid` (hex) in this pack, or -1. */
  private find(oid: string): number {
    const key = Buffer.from(oid, 'hex');
    let lo = key[0]! === 0 ? 0 : this.fanout[key[0]! - 1]!;
    let hi = this.fanout[key[0]!]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      // Compares ids[mid] with the key.
      const c = this.ids.compare(key, 0, 20, mid * 20, mid * 20 + 20);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  has(oid: string): boolean {
    return this.find(oid) >= 0;
  }

  /** The object, or undefined when it is not in this pack. The pack is open only during the call. */
  read(oid: string): PackedObject | undefined {
    const i = this.find(oid);
    if (i < 0) return undefined;
    const own = this.fd === undefined;
    if (own) this.fd = openSync(this.packFile, 'r');
    try {
      return this.readAt(this.offsets[i]!);
    } finally {
      if (own && this.fd !== undefined) closeSync(this.fd);
      if (own) this.fd = undefined;
    }
  }

  private entryEnd(offset: number): number {
    const s = this.sortedOffsets;
    let lo = 0;
    let hi = s.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (s[mid]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo < s.length ? s[lo]! : this.packSize - 20;
  }

  private readAt(offset: number, depth = 0): PackedObject {
    const cached = this.bases.get(offset);
    if (cached) return cached;
    if (depth > 10_000) throw badPack(this.packFile, 'delta chain too long');
    if (this.fd === undefined) throw new TypeError('pack read outside read()');
    const end = this.entryEnd(offset);
    const buf = Buffer.allocUnsafe(end - offset);
    if (readSync(this.fd, buf, 0, buf.length, offset) !== buf.length)
      throw badPack(this.packFile, 'truncated entry');
    const h = entryHeader(buf, 0);
    if (h === undefined) throw badPack(this.packFile, 'truncated entry');
    const data = buf.subarray(h.dataAt);
    let result: PackedObject;
    if (h.kind >= 1 && h.kind <= 4) {
      result = { type: OBJECT_TYPES[h.kind]!, data: this.inflate(data, h.size) };
    } else if (h.kind === OFS_DELTA || h.kind === REF_DELTA) {
      let base: PackedObject | undefined;
      if (h.baseRel !== undefined) {
        base = this.readAt(offset - h.baseRel, depth + 1);
        this.bases.set(offset - h.baseRel, base);
      } else {
        const i = this.find(h.baseId!);
        base = i >= 0 ? this.readAt(this.offsets[i]!, depth + 1) : this.external(h.baseId!);
        if (base === undefined) throw badPack(this.packFile, `missing delta base ${h.baseId}`);
      }
      result = {
        type: base.type,
        data: applyDelta(base.data, this.inflate(data, h.size), this.packFile),
      };
    } else throw badPack(this.packFile, `unknown entry type ${h.kind} at ${offset}`);
    return result;
  }

  private inflate(data: Buffer, size: number): Uint8Array {
    // The addon's inflate (a z_stream reused, not a stream object per call); anything it does not
    // inflate to exactly `size` bytes goes the node:zlib way below, which says what is wrong.
    const fast = inflateExact(data, size);
    if (fast !== undefined) return new Uint8Array(fast.buffer, fast.byteOffset, fast.byteLength);
    const out = inflateSync(data, { chunkSize: outputChunk(size) });
    if (out.length !== size)
      throw badPack(this.packFile, `entry inflates to ${out.length} bytes, expected ${size}`);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
}

export const OFS_DELTA = 6;
export const REF_DELTA = 7;

export interface EntryHeader {
  /** 1–4: commit, tree, blob, tag; 6: OFS_DELTA; 7: REF_DELTA (anything else is the caller's error). */
  readonly kind: number;
  /** Inflated size of the object or delta. */
  readonly size: number;
  /** OFS_DELTA: how far before this entry its base starts. */
  readonly baseRel: number | undefined;
  /** REF_DELTA: the base's id (hex). */
  readonly baseId: string | undefined;
  /** Where the zlib data starts. */
  readonly dataAt: number;
}

/** The header of the pack entry at `at` (format at the top of this file); undefined when `buf` ends inside it. */
export function entryHeader(buf: Uint8Array, at: number, end = buf.length): EntryHeader | undefined {
  let p = at;
  if (p >= end) return undefined;
  let c = buf[p++]!;
  const kind = (c >> 4) & 7;
  let size = c & 15;
  let shift = 4;
  while (c & 0x80) {
    if (p >= end) return undefined;
    c = buf[p++]!;
    size += (c & 0x7f) * 2 ** shift;
    shift += 7;
  }
  let baseRel: number | undefined;
  let baseId: string | undefined;
  if (kind === OFS_DELTA) {
    if (p >= end) return undefined;
    c = buf[p++]!;
    baseRel = c & 0x7f;
    while (c & 0x80) {
      if (p >= end) return undefined;
      c = buf[p++]!;
      baseRel = (baseRel + 1) * 128 + (c & 0x7f);
    }
  } else if (kind === REF_DELTA) {
    if (p + 20 > end) return undefined;
    baseId = Buffer.from(buf.buffer, buf.byteOffset + p, 20).toString('hex');
    p += 20;
  }
  return { kind, size, baseRel, baseId, dataAt: p };
}

/**
 * zlib's output buffer for an object of `size` bytes: one byte more than the
 * object, so it inflates in one step into one allocation (about 4× faster
 * for small objects than the default 16 KiB chunks).
 */
export function outputChunk(size: number): number {
  return Math.max(64, size + 1);
}

/** Resolved objects by pack offset; the least recently used go first once they exceed `budget` bytes. */
export class BaseCache extends ByteLru<number, PackedObject> {
  constructor(budget: number) {
    super(budget, (obj) => obj.data.length);
  }
}

function readVarint(d: Uint8Array, pos: { p: number }): number {
  let n = 0;
  let shift = 0;
  let c: number;
  do {
    c = d[pos.p++]!;
    n += (c & 0x7f) * 2 ** shift;
    shift += 7;
  } while (c & 0x80);
  return n;
}

export function applyDelta(base: Uint8Array, delta: Uint8Array, file = 'delta'): Uint8Array {
  const pos = { p: 0 };
  if (readVarint(delta, pos) !== base.length) throw badPack(file, 'delta base size mismatch');
  const out = new Uint8Array(readVarint(delta, pos));
  let o = 0;
  while (pos.p < delta.length) {
    const op = delta[pos.p++]!;
    if (op & 0x80) {
      let off = 0;
      let len = 0;
      for (let b = 0; b < 4; b++) if (op & (1 << b)) off += delta[pos.p++]! * 2 ** (8 * b);
      for (let b = 0; b < 3; b++) if (op & (16 << b)) len += delta[pos.p++]! << (8 * b);
      if (len === 0) len = 0x10000;
      if (off + len > base.length || o + len > out.length) throw badPack(file, 'delta copy out of range');
      out.set(base.subarray(off, off + len), o);
      o += len;
    } else if (op > 0) {
      if (o + op > out.length || pos.p + op > delta.length) throw badPack(file, 'delta insert out of range');
      out.set(delta.subarray(pos.p, pos.p + op), o);
      o += op;
      pos.p += op;
    } else throw badPack(file, 'delta opcode 0');
  }
  if (o !== out.length) throw badPack(file, 'delta result size mismatch');
  return out;
}
