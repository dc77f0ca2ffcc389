/**
 * `git index-pack` for a received packfile: the version-2 `.idx` (format in
 * pack.ts) of a whole pack held in memory, byte-identical with what git
 * writes for the same pack (test/fetchers/git-index-pack.test.ts compares).
 *
 * One pass over the entries inflates each (node:zlib reports how much
 * compressed input it consumed, which is where the next entry starts), takes
 * the CRC32 of its raw bytes and the SHA-1 of every whole object; a second
 * pass resolves deltas (OFS_DELTA bases lie earlier in the pack; REF_DELTA
 * bases may be anywhere in it, or outside it — a thin pack — in the
 * repository, through `external`), with resolved bases kept in a 64 MiB LRU.
 * The pack's trailing SHA-1 is checked first. Anything malformed is ERR_GIT.
 *
 * It replaces isomorphic-git's own indexing on fetch (remote.ts), which took
 * most of a cold fetch: an asynchronous WebCrypto SHA-1 per object and a
 * fan-out table built in 256 passes over the ids.
 *
 * When the native addon is built, src/native/git-pack.cc does the same job
 * and this file is its reference and fallback (the tests run both). Here each
 * object costs a zlib stream, a hasher and a few allocations; there one
 * z_stream is reset per entry.
 */

import { inflateSync } from 'node:zlib';
import { FetchCacheError } from '../../errors.js';
import { gitPack } from '../../native/index.js';
import { digestOf } from '../../nix/hashing.js';
import { objectId } from './objects.js';
import {
  applyDelta,
  BaseCache,
  badPack,
  entryHeader,
  OBJECT_TYPES,
  OFS_DELTA,
  outputChunk,
  type PackedObject,
  REF_DELTA,
} from './pack.js';

const MAX_CHAIN = 10_000;
const CACHE_BYTES = 64 << 20;
/** Delta payloads kept from the first pass (instead of inflating them again) up to this many bytes. */
const KEEP_DELTAS = 128 << 20;

interface Entry {
  readonly offset: number;
  /** 1–4 for whole objects, 6/7 for deltas. */
  readonly kind: number;
  readonly size: number;
  /** Where the zlib data starts. */
  readonly dataAt: number;
  readonly crc: number;
  /** OFS_DELTA: the base's offset. */
  readonly baseOffset: number | undefined;
  /** REF_DELTA: the base's id (hex). */
  readonly baseId: string | undefined;
  oid: string | undefined;
  type: string | undefined;
  /** The inflated delta, when kept from the first pass. */
  delta: Buffer | undefined;
}

function bad(why: string): FetchCacheError {
  return new FetchCacheError('ERR_GIT', `received git pack is corrupt: ${why}`);
}

let crcTable: Int32Array | undefined;

function crc32(buf: Uint8Array, start: number, end: number): number {
  if (crcTable === undefined) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  const t = crcTable;
  let c = -1;
  for (let i = start; i < end; i++) c = t[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

export type CommitSink = (oid: string, data: Uint8Array) => void;

/**
 * The `.idx` v2 bytes of `pack`; `external` finds REF_DELTA bases that are not
 * in it; `onCommit` (optional) gets every commit with the id just computed
 * from its bytes, so a caller can keep what it needs (its parents) without
 * reading the commits again. `native: false` uses the JavaScript indexer even
 * when the addon is built.
 */
export function indexPack(
  pack: Buffer,
  external: (oid: string) => PackedObject | undefined,
  onCommit?: CommitSink,
  options: { readonly native?: boolean } = {},
): Buffer {
  const addon = options.native === false ? undefined : gitPack();
  if (addon === undefined) return indexPackJs(pack, external, onCommit);
  let result: { idx: Buffer; commits: (string | Buffer)[] };
  try {
    result = addon.indexGitPack(pack, external);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_GIT_PACK') throw bad((e as Error).message);
    if (code === 'ERR_GIT_DELTA') throw badPack('received pack', (e as Error).message);
    throw e;
  }
  if (onCommit !== undefined) {
    const c = result.commits;
    for (let i = 0; i < c.length; i += 2) onCommit(c[i] as string, c[i + 1] as Buffer);
  }
  return result.idx;
}

/** The JavaScript indexer (the reference for git-pack.cc). */
export function indexPackJs(
  pack: Buffer,
  external: (oid: string) => PackedObject | undefined,
  onCommit?: CommitSink,
): Buffer {
  if (pack.length < 32 || pack.toString('latin1', 0, 4) !== 'PACK') throw bad('no PACK header');
  const version = pack.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw bad(`version ${version}`);
  const count = pack.readUInt32BE(8);
  const end = pack.length - 20;
  const trailer = pack.subarray(end);
  if (!trailer.equals(digestOf('sha1', pack.subarray(0, end)))) throw bad('its checksum does not match');

  const entries: Entry[] = new Array(count);
  const byOffset = new Map<number, Entry>();
  let kept = 0;
  let p = 12;
  for (let i = 0; i < count; i++) {
    if (p >= end) throw bad(`it ends after ${i} of ${count} objects`);
    const offset = p;
    const h = entryHeader(pack, p, end);
    if (h === undefined) throw bad('truncated entry header');
    const { kind, size, baseId } = h;
    let baseOffset: number | undefined;
    if (kind === OFS_DELTA) {
      baseOffset = offset - h.baseRel!;
      if (baseOffset < 12 || !byOffset.has(baseOffset))
        throw bad(`delta at ${offset} has no base at ${baseOffset}`);
    } else if (kind !== REF_DELTA && (kind < 1 || kind > 4))
      throw bad(`unknown entry type ${kind} at ${offset}`);
    const dataAt = h.dataAt;
    let data: Buffer;
    let used: number;
    try {
      const r = inflateSync(pack.subarray(dataAt, end), {
        info: true,
        chunkSize: outputChunk(size),
      }) as unknown as {
        buffer: Buffer;
        engine: { bytesWritten: number };
      };
      data = r.buffer;
      used = r.engine.bytesWritten;
    } catch {
      throw bad(`entry at ${offset} does not inflate`);
    }
    if (data.length !== size) throw bad(`entry at ${offset} inflates to ${data.length} bytes, not ${size}`);
    p = dataAt + used;
    // One object shape for every entry (no optional spreads): V8 keeps them fast.
    const entry: Entry = {
      offset,
      kind,
      size,
      dataAt,
      crc: crc32(pack, offset, p),
      baseOffset,
      baseId,
      oid: undefined,
      type: undefined,
      delta: undefined,
    };
    if (kind <= 4) {
      entry.type = OBJECT_TYPES[kind]!;
      entry.oid = objectId(entry.type, data);
      if (kind === 1) onCommit?.(entry.oid, data);
    } else if (kept + data.length <= KEEP_DELTAS) {
      entry.delta = data;
      kept += data.length;
    }
    entries[i] = entry;
    byOffset.set(offset, entry);
  }
  if (p !== end) throw bad(`${end - p} bytes after the last object`);

  // Deltas: whole objects by offset, resolved bases in an LRU.
  const byId = new Map<string, Entry>();
  for (const e of entries) if (e.oid !== undefined) byId.set(e.oid, e);
  const cache = new BaseCache(CACHE_BYTES);
  const inflated = (e: Entry): Uint8Array =>
    inflateSync(pack.subarray(e.dataAt, end), { chunkSize: outputChunk(e.size) });
  const objectAt = (e: Entry, depth: number): PackedObject => {
    const hit = cache.get(e.offset);
    if (hit !== undefined) return hit;
    if (depth > MAX_CHAIN) throw bad('delta chain too long');
    let obj: PackedObject;
    if (e.kind <= 4) obj = { type: e.type!, data: inflated(e) };
    else {
      let base: PackedObject | undefined;
      if (e.baseOffset !== undefined) base = objectAt(byOffset.get(e.baseOffset)!, depth + 1);
      else {
        const inPack = byId.get(e.baseId!);
        base = inPack !== undefined ? objectAt(inPack, depth + 1) : external(e.baseId!);
        if (base === undefined) throw new MissingBase(e.baseId!);
      }
      obj = { type: base.type, data: applyDelta(base.data, e.delta ?? inflated(e), 'received pack') };
    }
    cache.set(e.offset, obj);
    return obj;
  };
  // A REF_DELTA's base may be a delta later in the pack: retry until nothing is left.
  let pending = entries.filter((e) => e.oid === undefined);
  while (pending.length > 0) {
    const later: Entry[] = [];
    for (const e of pending) {
      try {
        const obj = objectAt(e, 0);
        e.type = obj.type;
        e.oid = objectId(obj.type, obj.data);
        e.delta = undefined;
        byId.set(e.oid, e);
        if (obj.type === 'commit') onCommit?.(e.oid, obj.data);
      } catch (err) {
        if (!(err instanceof MissingBase)) throw err;
        later.push(e);
      }
    }
    if (later.length === pending.length) throw bad(`missing delta base ${later[0]!.baseId}`);
    pending = later;
  }
  return writeIndex(entries, trailer);
}

class MissingBase extends Error {
  constructor(readonly oid: string) {
    super(`missing delta base ${oid}`);
  }
}

function writeIndex(entries: Entry[], packChecksum: Buffer): Buffer {
  const n = entries.length;
  const ids = entries.map((e) => e.oid!);
  // Lowercase hex sorts as the bytes do.
  const order = Uint32Array.from(ids.keys()).sort((a, b) =>
    ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0,
  );
  for (let i = 1; i < n; i++)
    if (ids[order[i]!] === ids[order[i - 1]!]) throw bad(`object ${ids[order[i]!]} appears twice`);
  let big = 0;
  for (const e of entries) if (e.offset >= 0x80000000) big++;
  const out = Buffer.alloc(8 + 1024 + n * 28 + big * 8 + 40);
  out.writeUInt32BE(0xff744f63, 0);
  out.writeUInt32BE(2, 4);
  const idsAt = 8 + 1024;
  const crcAt = idsAt + n * 20;
  const offAt = crcAt + n * 4;
  const bigAt = offAt + n * 4;
  let bigUsed = 0;
  for (let i = 0; i < n; i++) {
    const e = entries[order[i]!]!;
    out.write(ids[order[i]!]!, idsAt + i * 20, 20, 'hex');
    out.writeUInt32BE(e.crc, crcAt + i * 4);
    if (e.offset < 0x80000000) out.writeUInt32BE(e.offset, offAt + i * 4);
    else {
      out.writeUInt32BE((0x80000000 | bigUsed) >>> 0, offAt + i * 4);
      out.writeBigUInt64BE(BigInt(e.offset), bigAt + bigUsed * 8);
      bigUsed++;
    }
  }
  // Fan-out: entry b counts the ids whose first byte is ≤ b.
  let at = 0;
  for (let b = 0; b < 256; b++) {
    while (at < n && out[idsAt + at * 20]! <= b) at++;
    out.writeUInt32BE(at, 8 + b * 4);
  }
  const sumAt = bigAt + big * 8;
  packChecksum.copy(out, sumAt);
  out.set(digestOf('sha1', out.subarray(0, sumAt + 20)), sumAt + 20);
  return out;
}
