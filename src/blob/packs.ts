/**
 * Pack files: chunk bytes appended to files under `<root>/packs/`, found
 * through the `chunks` index of the blob service (chunk-store.ts says why).
 *
 * A pack is `<16 hex id>.pack`, written by one process only: the id is the
 * writer's pid (u32le) and 4 random bytes, so any process can tell whether a
 * pack may still grow. It starts with the magic `FCPACK1\n`, then records
 *
 *   u32le length | 32-byte BLAKE3 of the bytes | bytes
 *
 * so a pack can be read front to back without the index (compaction, and
 * recovery by hand). An index value is a 20-byte location:
 *
 *   8-byte pack id | u64le offset of the bytes | u32le length
 *
 * Chunks waiting in a group commit to be appended are held in a few buffers
 * the store reuses (`hold`, `release`): a fresh buffer per chunk made garbage
 * collection a large part of adding a large file.
 *
 * Order and crashes: bytes are written (a group of chunks in writes of about
 * 1 MiB) before the index rows naming them are put, so an index row never points
 * past what was written; a crash mid-write leaves a torn tail no row points
 * at. Like the database (no sync writes), a pack is safe against a killed
 * process, not against a lost page cache.
 *
 * Reads are synchronous `pread`s of at most one chunk (≤ 256 KiB with the
 * default chunker), from page cache in the common case: through the thread
 * pool each read of a small file cost more in round trips than the copy.
 * Compaction (called by gc) rewrites packs of finished writers that are
 * mostly dead or small into the caller's own pack and deletes them; a reader
 * that finds its pack gone looks the chunk up again once.
 *
 * After the database was rebuilt (backends/level-db.ts: LevelDB's repair loses the
 * entries of a damaged table, and a database started afresh names nothing),
 * `reindex` gives every record whose digest the index does not name its row
 * back, once its bytes hash to that digest: paths whose path infos survived
 * but whose chunk rows were lost are whole again; chunks nothing reaches stay
 * garbage that gc deletes as usual. Records are read front to back, as
 * compaction reads them; a torn or damaged record ends the pack's scan.
 */

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
  writev,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FetchCacheError } from '../errors.js';
import { blake3 } from '../nix/hashing.js';
import type { Put } from '../storage/group-commit.js';
import type { KV } from '../storage/kv.js';
import { processRunning } from '../storage/process.js';
import { type ChunkSegments, type ChunkStore, GetBatcher, type SegmentCheck } from './chunk-store.js';

const writevAsync = promisify(writev);

export const PACK_MAGIC = Buffer.from('FCPACK1\n', 'latin1');
/** u32le length + 32-byte digest before each chunk's bytes. */
export const RECORD_HEADER = 36;
export const LOCATION_SIZE = 20;
const ID_SIZE = 8;
/** Chunks at most this far apart (record headers) are read in one pread... */
const RUN_GAP = 4096;
/** ...of at most this many bytes. */
const RUN_BYTES = 1 << 20;
/**
 * Appends go to the file in writes of at most about this many bytes: one write of a whole group
 * (several MiB) cost several times the kernel time of the same bytes in 1 MiB writes.
 */
const WRITE_BYTES = 1 << 20;

export interface PackLocation {
  /** Pack id as 16 hex digits (the file name without `.pack`). */
  readonly pack: string;
  /** Offset of the chunk bytes in the pack file. */
  readonly offset: number;
  readonly length: number;
}

export function encodeLocation(id: Uint8Array, offset: number, length: number): Uint8Array {
  const out = Buffer.allocUnsafe(LOCATION_SIZE);
  out.set(id.subarray(0, ID_SIZE), 0);
  out.writeUInt32LE(offset % 2 ** 32, 8);
  out.writeUInt32LE(Math.floor(offset / 2 ** 32), 12);
  out.writeUInt32LE(length, 16);
  return new Uint8Array(out.buffer, out.byteOffset, LOCATION_SIZE);
}

/** `undefined` when the value is not a location (a damaged index row). */
export function decodeLocation(value: Uint8Array): PackLocation | undefined {
  if (value.length !== LOCATION_SIZE) return undefined;
  const b = Buffer.from(value.buffer, value.byteOffset, value.length);
  return {
    pack: b.toString('hex', 0, ID_SIZE),
    offset: b.readUInt32LE(8) + b.readUInt32LE(12) * 2 ** 32,
    length: b.readUInt32LE(16),
  };
}

export function packFile(dir: string, pack: string): string {
  return join(dir, `${pack}.pack`);
}

/** The pid of the process that wrote (or writes) a pack. */
export function packWriterPid(pack: string): number {
  return Buffer.from(pack, 'hex').readUInt32LE(0);
}

export interface PackChunkStoreOptions {
  /** A writer starts a new pack once its pack has this many bytes (default 512 MiB). */
  readonly packBytes?: number;
  /** Open read descriptors kept (default 256). */
  readonly maxOpenFiles?: number;
  /** Chunk locations to remember (default 0: none); `serve` keeps 65,536. */
  readonly locationCache?: number;
  /** Told the pack of every chunk located for a read (a cache keeps its packs in least-recently-used order). */
  readonly onLocate?: ((pack: string) => void) | undefined;
}

export interface CompactOptions {
  /** Rewrite a finished pack whose live bytes are below this share of it (default 0.5). */
  readonly minLiveRatio?: number;
  /** Merge finished packs smaller than this (default 16 MiB): every CLI run that writes makes one. */
  readonly smallPackBytes?: number;
}

export interface CompactReport {
  /** Packs deleted (each after its live chunks were copied). */
  packs: number;
  /** Chunks copied into a new pack. */
  moved: number;
  /** File bytes given back (deleted packs minus what was copied). */
  freedBytes: number;
}

/**
 * A pack opened for `segments`: a descriptor that stays open while any segment of it is being sent
 * (`refs`), so the LRU of `fds` can never close it under a sendfile.
 */
interface OpenPack {
  readonly pack: string;
  readonly fd: number;
  refs: number;
  /** Deleted (compaction) or the store closed: closed once nothing holds it. */
  gone: boolean;
}

/** Packs kept open for `segments` beyond those being sent. */
const OPEN_PACKS = 32;

/** Memory `hold` copies chunks into: slabs of this size (larger chunks get a buffer of their own)... */
const SLAB_BYTES = 4 << 20;
/** ...of which this many are kept for reuse when free (a group commit holds about 2 groups of 8 MiB). */
const FREE_SLABS = 4;

interface Slab {
  readonly bytes: Uint8Array;
  used: number;
  /** Copies in it not yet released. */
  held: number;
}

/** Slabs that hold copies of chunks until they are released, then are reused. */
class HeldChunks {
  private current: Slab | undefined;
  private readonly free: Slab[] = [];
  private readonly slabs = new Map<ArrayBufferLike, Slab>();

  hold(bytes: Uint8Array): Uint8Array {
    const n = bytes.length;
    if (n > SLAB_BYTES / 4) return bytes.slice();
    let s = this.current;
    if (s === undefined || s.used + n > s.bytes.length) {
      s = this.free.pop() ?? this.newSlab();
      this.current = s;
    }
    const copy = s.bytes.subarray(s.used, s.used + n);
    copy.set(bytes);
    s.used += n;
    s.held++;
    return copy;
  }

  release(held: readonly Uint8Array[]): void {
    for (const copy of held) {
      const s = this.slabs.get(copy.buffer);
      if (s === undefined || --s.held > 0) continue;
      s.used = 0;
      if (s === this.current) continue;
      if (this.free.length < FREE_SLABS) this.free.push(s);
      else this.slabs.delete(s.bytes.buffer);
    }
  }

  private newSlab(): Slab {
    const bytes = new Uint8Array(Buffer.allocUnsafeSlow(SLAB_BYTES).buffer);
    const s: Slab = { bytes, used: 0, held: 0 };
    this.slabs.set(bytes.buffer, s);
    return s;
  }
}

interface Writer {
  readonly id: Buffer;
  readonly pack: string;
  readonly fd: number;
  size: number;
}

/** A bounded map from chunk digest to location; the oldest entries go first. */
class LocationCache {
  private readonly map = new Map<string, PackLocation>();
  constructor(private readonly max: number) {}
  private static key(digest: Uint8Array): string {
    return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('latin1');
  }
  get(digest: Uint8Array): PackLocation | undefined {
    if (this.max === 0) return undefined;
    return this.map.get(LocationCache.key(digest));
  }
  set(digest: Uint8Array, loc: PackLocation): void {
    if (this.max === 0) return;
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value as string);
    this.map.set(LocationCache.key(digest), loc);
  }
  delete(digest: Uint8Array): void {
    this.map.delete(LocationCache.key(digest));
  }
}

export class PackChunkStore implements ChunkStore {
  private readonly packBytes: number;
  private readonly maxOpenFiles: number;
  private writer: Writer | undefined;
  private readonly fds = new Map<string, number>();
  /** Appends run one at a time (the group commit and compaction share the writer). */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly batcher: GetBatcher;
  /**
   * Locations read from the index lately, so that serving a large blob again does not look up each of its
   * chunks in LevelDB (that was ~7% of serving a 128 MiB NAR). An entry can only go stale by its pack
   * being deleted (packs are append-only and compaction writes new ones), which `readLocated` notices
   * (ENOENT) and looks up again; the bytes read are verified by the caller either way. Off unless
   * `locationCache` is set: a process that reads each chunk once gains nothing, and the retained
   * entries made V8's collections under a 1 GiB `nar` ~4× as costly (GC 100 → 400-540 ms).
   */
  private readonly locations: LocationCache;
  private readonly openPacks = new Map<string, OpenPack>();
  /** Where `segments` reads a chunk to verify it: reused, so it stays in the CPU's cache. */
  private scratch = Buffer.allocUnsafeSlow(256 << 10);
  private readonly held = new HeldChunks();
  private readonly onLocate: ((pack: string) => void) | undefined;

  constructor(
    readonly index: KV,
    readonly dir: string,
    options: PackChunkStoreOptions = {},
  ) {
    this.batcher = new GetBatcher((keys) => this.getMany(keys));
    this.packBytes = options.packBytes ?? 512 << 20;
    this.maxOpenFiles = options.maxOpenFiles ?? 256;
    this.locations = new LocationCache(options.locationCache ?? 0);
    this.onLocate = options.onLocate;
    mkdirSync(dir, { recursive: true });
  }

  /**
   * Each chunk located (location cache, else one index read for all), then read into one reused
   * scratch buffer and hashed there: the bytes are not kept, sendfile sends them from the page cache.
   * Measured on the 2-core dev machine, a 128 MiB blob of ~75 KiB chunks from page cache, locations
   * cached: 2.5-2.7 GB/s, against 1.3-1.5 GB/s for `read` (a fresh buffer per chunk, then verified);
   * hashing through a read-only mapping instead ran at 1.85 GB/s, 0.7 with the hashed pages dropped
   * from the resident set after each chunk (page faults).
   * A pack deleted since its location was read (nlink 0, or gone when opened) is looked up again once.
   */
  async segments(digests: readonly Uint8Array[]): Promise<ChunkSegments> {
    if (this.closed) throw new TypeError('pack store is closed');
    const locs = await this.locate(digests);
    const held = new Set<OpenPack>();
    const checked = new Set<OpenPack>();
    const release = () => {
      for (const mp of held) this.unhold(mp);
      held.clear();
    };
    const checks: SegmentCheck[] = new Array(digests.length);
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const again: number[] = [];
        for (let i = 0; i < digests.length; i++) {
          if (checks[i] !== undefined) continue;
          const loc = locs[i];
          if (loc === undefined) checks[i] = { kind: 'missing' };
          else if (loc === 'damaged') checks[i] = { kind: 'damaged', actual: undefined, length: 0 };
          else {
            const mp = this.holdPack(loc.pack, held, checked);
            if (mp === undefined) {
              if (attempt === 0) again.push(i);
              else checks[i] = { kind: 'damaged', actual: undefined, length: 0 };
              continue;
            }
            checks[i] = this.checkAt(mp, loc, digests[i]!);
          }
        }
        if (again.length === 0) break;
        for (const i of again) this.locations.delete(digests[i]!);
        await this.lookUp(digests, again, locs);
      }
    } catch (e) {
      release();
      throw e;
    }
    return { checks, release };
  }

  /**
   * Where each chunk is: the location cache, else one index read for all the others. `undefined`
   * for a chunk not stored, 'damaged' for an index row that is not a location.
   */
  private async locate(digests: readonly Uint8Array[]): Promise<(PackLocation | 'damaged' | undefined)[]> {
    const locs: (PackLocation | 'damaged' | undefined)[] = new Array(digests.length);
    const misses: number[] = [];
    for (let i = 0; i < digests.length; i++) {
      const loc = this.locations.get(digests[i]!);
      if (loc !== undefined) locs[i] = loc;
      else misses.push(i);
    }
    if (misses.length > 0) await this.lookUp(digests, misses, locs);
    if (this.onLocate !== undefined)
      for (const loc of locs) if (typeof loc === 'object') this.onLocate(loc.pack);
    return locs;
  }

  /** Index rows of `digests[i]` for each i of `which`, into `locs` (and the location cache). */
  private async lookUp(
    digests: readonly Uint8Array[],
    which: readonly number[],
    locs: (PackLocation | 'damaged' | undefined)[],
  ): Promise<void> {
    const values = await this.index.getMany(which.map((i) => digests[i]!));
    which.forEach((i, m) => {
      const v = values[m];
      const loc = v === undefined ? undefined : decodeLocation(v);
      locs[i] = v === undefined ? undefined : (loc ?? 'damaged');
      if (loc !== undefined) this.locations.set(digests[i]!, loc);
    });
  }

  /** The pack open, held for this call (once); `undefined` when it is gone. */
  private holdPack(pack: string, held: Set<OpenPack>, checked: Set<OpenPack>): OpenPack | undefined {
    let mp = this.openPacks.get(pack);
    if (mp === undefined) {
      let fd: number;
      try {
        fd = openSync(packFile(this.dir, pack), 'r');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
      mp = { pack, fd, refs: 0, gone: false };
    } else this.openPacks.delete(pack); // most recently used last
    this.openPacks.set(pack, mp);
    if (!held.has(mp)) {
      held.add(mp);
      mp.refs++;
    }
    this.trimPacks(); // after the hold: never closes this one
    if (!checked.has(mp)) {
      checked.add(mp);
      if (fstatSync(mp.fd).nlink === 0) {
        this.dropPack(mp);
        return undefined;
      }
    }
    return mp;
  }

  private checkAt(mp: OpenPack, loc: PackLocation, digest: Uint8Array): SegmentCheck {
    if (this.scratch.length < loc.length) this.scratch = Buffer.allocUnsafeSlow(loc.length);
    const buf = this.scratch;
    let got = 0;
    while (got < loc.length) {
      const n = readSync(mp.fd, buf, got, loc.length - got, loc.offset + got);
      if (n === 0) break;
      got += n;
    }
    if (got < loc.length || loc.length === 0) return { kind: 'damaged', actual: undefined, length: got };
    const actual = blake3(buf.subarray(0, got));
    if (!Buffer.from(actual.buffer, actual.byteOffset, 32).equals(digest))
      return { kind: 'damaged', actual, length: got };
    return { kind: 'ok', segment: { fd: mp.fd, offset: loc.offset, length: loc.length } };
  }

  private unhold(mp: OpenPack): void {
    mp.refs--;
    if (mp.refs === 0 && mp.gone) closeSync(mp.fd);
    else if (mp.refs === 0) this.trimPacks();
  }

  /** No longer handed out; closed now, or when the last segment of it is sent. */
  private dropPack(mp: OpenPack): void {
    if (mp.gone) return;
    mp.gone = true;
    if (this.openPacks.get(mp.pack) === mp) this.openPacks.delete(mp.pack);
    if (mp.refs === 0) closeSync(mp.fd);
  }

  private trimPacks(): void {
    if (this.openPacks.size <= OPEN_PACKS) return;
    for (const mp of this.openPacks.values()) {
      if (this.openPacks.size <= OPEN_PACKS) break;
      if (mp.refs === 0) this.dropPack(mp);
    }
  }

  get(digest: Uint8Array): Promise<Uint8Array | undefined> {
    return this.batcher.get(digest);
  }

  /**
   * One index read for all, then the bytes: chunks that lie next to each
   * other in a pack (a tree's small files are appended in a row) are read
   * with one pread per run of up to RUN_BYTES, not one per chunk.
   */
  async getMany(digests: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    const out: (Uint8Array | undefined)[] = new Array(digests.length);
    const located: { i: number; loc: PackLocation }[] = [];
    (await this.locate(digests)).forEach((loc, i) => {
      if (loc === 'damaged')
        out[i] = new Uint8Array(0); // a damaged row: fails verification
      else if (loc !== undefined) located.push({ i, loc });
    });
    located.sort((a, b) =>
      a.loc.pack < b.loc.pack ? -1 : a.loc.pack > b.loc.pack ? 1 : a.loc.offset - b.loc.offset,
    );
    for (let r = 0; r < located.length; ) {
      const first = located[r]!.loc;
      let end = first.offset + first.length;
      let k = r + 1;
      for (; k < located.length; k++) {
        const next = located[k]!.loc;
        if (next.pack !== first.pack || next.offset < end || next.offset - end > RUN_GAP) break;
        if (next.offset + next.length - first.offset > RUN_BYTES) break;
        end = next.offset + next.length;
      }
      let run: Uint8Array | undefined;
      if (k - r > 1) {
        try {
          run = this.readAt({ pack: first.pack, offset: first.offset, length: end - first.offset });
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
      for (let j = r; j < k; j++) {
        const { i, loc } = located[j]!;
        if (run !== undefined) {
          const from = loc.offset - first.offset;
          // A truncated pack gives a short run, and so short (failing) chunks.
          out[i] = run.subarray(Math.min(from, run.length), Math.min(from + loc.length, run.length));
        } else out[i] = await this.readLocated(digests[i]!, loc);
      }
      r = k;
    }
    return out;
  }

  hold(bytes: Uint8Array): Uint8Array {
    return this.held.hold(bytes);
  }

  release(held: readonly Uint8Array[]): void {
    this.held.release(held);
  }

  async store(puts: readonly Put[]): Promise<Put[]> {
    if (puts.length === 0) return [];
    const locations = await this.append(puts.map((p) => ({ digest: p.key, bytes: p.value })));
    return puts.map((p, i) => ({ kv: this.index, key: p.key, value: locations[i]! }));
  }

  storedSize(value: Uint8Array): number {
    return decodeLocation(value)?.length ?? value.length;
  }

  /** Append chunks to this process's pack; resolves with their index values once written. */
  append(chunks: readonly { digest: Uint8Array; bytes: Uint8Array }[]): Promise<Uint8Array[]> {
    const run = this.tail.then(() => this.appendNow(chunks));
    this.tail = run.catch(() => {});
    return run;
  }

  /** Bytes of one chunk at a location; short when the pack is truncated. Throws ENOENT if the pack is gone. */
  readAt(loc: PackLocation): Uint8Array {
    const fd = this.readFd(loc.pack);
    const out = Buffer.allocUnsafe(loc.length);
    let done = 0;
    while (done < loc.length) {
      const n = readSync(fd, out, done, loc.length - done, loc.offset + done);
      if (n === 0) break;
      done += n;
    }
    return new Uint8Array(out.buffer, out.byteOffset, done);
  }

  diskBytes(): number {
    let total = 0;
    for (const p of this.packs()) total += p.bytes;
    return total;
  }

  /** Every pack file: id and size. */
  packs(): { pack: string; bytes: number }[] {
    const out: { pack: string; bytes: number }[] = [];
    for (const name of readdirSync(this.dir)) {
      const m = /^([0-9a-f]{16})\.pack$/.exec(name);
      if (m === null) continue;
      try {
        out.push({ pack: m[1]!, bytes: statSync(join(this.dir, name)).size });
      } catch {
        // deleted meanwhile by another compaction
      }
    }
    return out;
  }

  /**
   * Rewrite finished packs that are mostly dead or small: their live chunks
   * (those the index still names at that place) are appended to this
   * process's pack, the index rows moved, and the old pack deleted. Packs of
   * running writers (their pid alive) and this process's current pack are
   * left alone. Every pack is scanned against the index before it goes, even
   * one the index seems not to name: a pack is deleted only once every live
   * byte the index names in it has been moved (one whose records cannot all
   * be read back, e.g. a damaged header, is kept), and a pack another process
   * deleted meanwhile is skipped. The caller (gc) runs one compaction at a
   * time per store (coordination/service.ts `gcTurn`).
   */
  async compact(options: CompactOptions = {}): Promise<CompactReport> {
    const minLive = options.minLiveRatio ?? 0.5;
    const small = options.smallPackBytes ?? 16 << 20;
    const report: CompactReport = { packs: 0, moved: 0, freedBytes: 0 };
    const live = new Map<string, number>();
    for await (const value of this.index.values()) {
      const loc = decodeLocation(value);
      if (loc !== undefined) live.set(loc.pack, (live.get(loc.pack) ?? 0) + loc.length + RECORD_HEADER);
    }
    // Fewest live bytes first: dead packs go without copying anything, so on a full disk they give
    // space back before a copy can fail for want of it (which ends the compaction, not the gc).
    const candidates = this.packs()
      .filter((p) => p.pack !== this.writer?.pack && !writerRunning(p.pack))
      .sort((a, b) => (live.get(a.pack) ?? 0) - (live.get(b.pack) ?? 0));
    const singleSmall = candidates.filter((p) => p.bytes < small).length < 2;
    for (const p of candidates) {
      const liveBytes = live.get(p.pack) ?? 0;
      const worth = liveBytes === 0 || liveBytes < p.bytes * minLive || (p.bytes < small && !singleSmall);
      if (!worth) continue;
      let moved: { chunks: number; bytes: number } | undefined;
      try {
        moved = await this.rewrite(p.pack);
      } catch (e) {
        if (e instanceof FetchCacheError && e.code === 'ERR_IO') break;
        throw e;
      }
      if (moved === undefined || moved.bytes < liveBytes) continue;
      this.forget(p.pack);
      try {
        unlinkSync(packFile(this.dir, p.pack));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        continue;
      }
      report.packs++;
      report.moved += moved.chunks;
      report.freedBytes += p.bytes - moved.bytes;
    }
    return report;
  }

  /**
   * Deletes a finished pack and every index row that names a place in it (a cache evicting it):
   * its records are read front to back, the rows that name them deleted, then the file. False for
   * this process's current pack and those of running writers, which are kept.
   */
  async drop(pack: string): Promise<boolean> {
    if (pack === this.writer?.pack || writerRunning(pack)) return false;
    let fd: number;
    try {
      fd = openSync(packFile(this.dir, pack), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
      throw e;
    }
    try {
      const size = fstatSync(fd).size;
      const head = Buffer.allocUnsafe(RECORD_HEADER);
      let batch: { digest: Uint8Array; at: number }[] = [];
      const flush = async () => {
        const rows = await this.index.getMany(batch.map((r) => r.digest));
        const dels = batch.filter((r, i) => {
          const loc = rows[i] === undefined ? undefined : decodeLocation(rows[i]!);
          return loc !== undefined && loc.pack === pack && loc.offset === r.at;
        });
        if (dels.length > 0)
          await this.index.batch(dels.map((r) => ({ type: 'del' as const, key: r.digest })));
        for (const r of dels) this.locations.delete(r.digest);
        batch = [];
      };
      let at = PACK_MAGIC.length;
      while (at + RECORD_HEADER <= size) {
        if (readSync(fd, head, 0, RECORD_HEADER, at) !== RECORD_HEADER) break;
        const length = head.readUInt32LE(0);
        batch.push({ digest: new Uint8Array(head.subarray(4, RECORD_HEADER)), at: at + RECORD_HEADER });
        at += RECORD_HEADER + length;
        if (batch.length >= 1024) await flush();
      }
      await flush();
    } finally {
      closeSync(fd);
    }
    this.forget(pack);
    rmSync(packFile(this.dir, pack), { force: true });
    return true;
  }

  async reindex(): Promise<{ chunks: number; bytes: number }> {
    const report = { chunks: 0, bytes: 0 };
    for (const { pack } of this.packs()) {
      let fd: number;
      try {
        fd = openSync(packFile(this.dir, pack), 'r');
      } catch {
        continue; // deleted meanwhile
      }
      try {
        const id = Buffer.from(pack, 'hex');
        const size = fstatSync(fd).size;
        const head = Buffer.allocUnsafe(RECORD_HEADER);
        let batch: { digest: Uint8Array; at: number; length: number }[] = [];
        const flush = async () => {
          const present = await this.index.hasMany(batch.map((r) => r.digest));
          const puts: { type: 'put'; key: Uint8Array; value: Uint8Array }[] = [];
          batch.forEach((r, i) => {
            if (present[i]) return;
            const bytes = Buffer.allocUnsafe(r.length);
            if (readSync(fd, bytes, 0, r.length, r.at) !== r.length) return;
            if (!Buffer.from(blake3(bytes)).equals(r.digest)) return;
            puts.push({ type: 'put', key: r.digest, value: encodeLocation(id, r.at, r.length) });
            report.chunks++;
            report.bytes += r.length;
          });
          if (puts.length > 0) await this.index.batch(puts);
          batch = [];
        };
        let at = PACK_MAGIC.length;
        while (at + RECORD_HEADER <= size) {
          if (readSync(fd, head, 0, RECORD_HEADER, at) !== RECORD_HEADER) break;
          const length = head.readUInt32LE(0);
          if (at + RECORD_HEADER + length > size) break;
          batch.push({
            digest: new Uint8Array(head.subarray(4, RECORD_HEADER)),
            at: at + RECORD_HEADER,
            length,
          });
          at += RECORD_HEADER + length;
          if (batch.length >= 1024) await flush();
        }
        await flush();
      } finally {
        closeSync(fd);
      }
    }
    return report;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    if (this.writer !== undefined) closeSync(this.writer.fd);
    this.writer = undefined;
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    for (const mp of [...this.openPacks.values()]) this.dropPack(mp);
  }

  private async appendNow(
    chunks: readonly { digest: Uint8Array; bytes: Uint8Array }[],
  ): Promise<Uint8Array[]> {
    if (this.closed) throw new TypeError('pack store is closed');
    let total = 0;
    for (const c of chunks) total += RECORD_HEADER + c.bytes.length;
    const w = this.writerFor(total);
    const iov: Uint8Array[] = [];
    const out: Uint8Array[] = [];
    let at = w.size;
    for (const c of chunks) {
      const head = Buffer.allocUnsafe(RECORD_HEADER);
      head.writeUInt32LE(c.bytes.length, 0);
      head.set(c.digest, 4);
      iov.push(head, c.bytes);
      out.push(encodeLocation(w.id, at + RECORD_HEADER, c.bytes.length));
      at += RECORD_HEADER + c.bytes.length;
    }
    let written = 0;
    try {
      // libuv writes all buffers of a call, in IOV_MAX slices, before calling back.
      for (let i = 0; i < iov.length; ) {
        const from = i;
        let bytes = 0;
        while (i < iov.length && (i === from || bytes + iov[i]!.length <= WRITE_BYTES))
          bytes += iov[i++]!.length;
        const n = (await writevAsync(w.fd, iov.slice(from, i), w.size + written)).bytesWritten;
        written += n;
        if (n !== bytes) break;
      }
    } catch (e) {
      this.abandon(w);
      throw new FetchCacheError('ERR_IO', `cannot write pack ${w.pack}: ${(e as Error).message}`, {
        path: packFile(this.dir, w.pack),
      });
    }
    if (written !== total) {
      this.abandon(w);
      throw new FetchCacheError('ERR_IO', `short write to pack ${w.pack}`, {
        path: packFile(this.dir, w.pack),
      });
    }
    w.size += total;
    return out;
  }

  /** The pack to append `bytes` to: the current one, or a new one when it is full. */
  private writerFor(bytes: number): Writer {
    const w = this.writer;
    if (w !== undefined && (w.size === PACK_MAGIC.length || w.size + bytes <= this.packBytes)) return w;
    if (w !== undefined) this.retire();
    const id = randomBytes(ID_SIZE);
    id.writeUInt32LE(process.pid >>> 0, 0);
    const pack = id.toString('hex');
    const fd = openSync(packFile(this.dir, pack), 'wx');
    const next: Writer = { id, pack, fd, size: 0 };
    try {
      if (writeAllSync(fd, PACK_MAGIC) !== PACK_MAGIC.length) throw new Error('short write');
    } catch (e) {
      closeSync(fd);
      rmSync(packFile(this.dir, pack), { force: true });
      throw new FetchCacheError('ERR_IO', `cannot start pack ${pack}: ${(e as Error).message}`, {
        path: packFile(this.dir, pack),
      });
    }
    next.size = PACK_MAGIC.length;
    this.writer = next;
    return next;
  }

  /**
   * A write failed (a full disk, say): cut the pack back to what was written before it, so no torn
   * tail is left, or delete it if nothing was; then stop appending to it. Chunks written before stay
   * (their rows may be put already); gc deletes them if nothing comes to reach them.
   */
  private abandon(w: Writer): void {
    try {
      if (w.size <= PACK_MAGIC.length) rmSync(packFile(this.dir, w.pack), { force: true });
      else ftruncateSync(w.fd, w.size);
    } catch {
      // nothing more to do: the torn tail is left for compaction to skip
    }
    this.retire();
  }

  /** Stop appending to the current pack (full, or a write failed: its tail is unknown). */
  private retire(): void {
    if (this.writer === undefined) return;
    closeSync(this.writer.fd);
    this.writer = undefined;
  }

  /** The bytes at `loc`, or where the index now says when the pack is gone (compaction moved the chunk). */
  private async readLocated(digest: Uint8Array, loc: PackLocation): Promise<Uint8Array | undefined> {
    try {
      return this.readAt(loc);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.locations.delete(digest);
    const again = await this.index.get(digest);
    if (again === undefined) return undefined;
    const moved = decodeLocation(again);
    if (moved === undefined) return new Uint8Array(0);
    try {
      return this.readAt(moved);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      return new Uint8Array(0);
    }
  }

  private readFd(pack: string): number {
    const fd = this.fds.get(pack);
    if (fd !== undefined) {
      // Most recently used last, so the first entry is the one to close.
      this.fds.delete(pack);
      this.fds.set(pack, fd);
      return fd;
    }
    const opened = openSync(packFile(this.dir, pack), 'r');
    this.fds.set(pack, opened);
    if (this.fds.size > this.maxOpenFiles) {
      const [oldest, oldFd] = this.fds.entries().next().value as [string, number];
      this.fds.delete(oldest);
      closeSync(oldFd);
    }
    return opened;
  }

  private forget(pack: string): void {
    const mp = this.openPacks.get(pack);
    if (mp !== undefined) this.dropPack(mp);
    const fd = this.fds.get(pack);
    if (fd === undefined) return;
    this.fds.delete(pack);
    closeSync(fd);
  }

  /**
   * Copy the live records of a pack into ours and move their index rows:
   * record headers are read first, their rows looked up, and only the bytes
   * of records a row names at that place are read. `undefined` when the
   * pack is gone (another process deleted it).
   */
  private async rewrite(pack: string): Promise<{ chunks: number; bytes: number } | undefined> {
    let fd: number;
    try {
      fd = openSync(packFile(this.dir, pack), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const moved = { chunks: 0, bytes: 0 };
    try {
      const size = fstatSync(fd).size;
      let batch: { digest: Uint8Array; length: number; at: number }[] = [];
      let batchBytes = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        const rows = await this.index.getMany(batch.map((r) => r.digest));
        const keep = batch.filter((r, i) => {
          const loc = rows[i] === undefined ? undefined : decodeLocation(rows[i]!);
          return loc !== undefined && loc.pack === pack && loc.offset === r.at && loc.length === r.length;
        });
        batch = [];
        batchBytes = 0;
        if (keep.length === 0) return;
        const chunks = keep.map((r) => {
          const bytes = Buffer.allocUnsafe(r.length);
          const n = r.length === 0 ? 0 : readSync(fd, bytes, 0, r.length, r.at);
          return { digest: r.digest, bytes: bytes.subarray(0, n) };
        });
        const locations = await this.append(chunks);
        await this.index.batch(keep.map((r, i) => ({ type: 'put', key: r.digest, value: locations[i]! })));
        for (const r of keep) this.locations.delete(r.digest);
        moved.chunks += keep.length;
        for (const r of keep) moved.bytes += RECORD_HEADER + r.length;
      };
      const head = Buffer.allocUnsafe(RECORD_HEADER);
      let at = PACK_MAGIC.length;
      while (at + RECORD_HEADER <= size) {
        if (readSync(fd, head, 0, RECORD_HEADER, at) !== RECORD_HEADER) break;
        const length = head.readUInt32LE(0);
        if (at + RECORD_HEADER + length > size) break; // torn tail of a killed writer
        batch.push({
          digest: new Uint8Array(head.subarray(4, RECORD_HEADER)),
          length,
          at: at + RECORD_HEADER,
        });
        batchBytes += length;
        at += RECORD_HEADER + length;
        if (batchBytes >= 8 << 20 || batch.length >= 4096) await flush();
      }
      await flush();
    } finally {
      closeSync(fd);
    }
    return moved;
  }
}

function writerRunning(pack: string): boolean {
  const pid = packWriterPid(pack);
  if (pid === process.pid) return false; // ours, and not the current one: finished
  return processRunning(pid);
}

function writeAllSync(fd: number, data: Uint8Array): number {
  let done = 0;
  while (done < data.length) {
    done += writeSync(fd, data.subarray(done));
  }
  return done;
}
