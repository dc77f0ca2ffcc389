/**
 * The persistent BlobService on the KV layer (LevelDB on disk, memory-level in
 * tests). Layout, in two sublevels of the database it is given:
 *
 *   chunks/<32-byte BLAKE3 of the chunk>  → the chunk bytes (uncompressed),
 *                                           or where a pack file holds them
 *                                           (chunk-store.ts, packs.ts)
 *   blobs/<32-byte BLAKE3 of the blob>    → its chunk list (chunk-list.ts),
 *                                           only for blobs of ≥ 2 chunks
 *   listsums/<32-byte BLAKE3 of the blob> → BLAKE3(blob digest ‖ list bytes)
 *
 * A blob of one chunk is that chunk: its chunk digest is the blob digest, so it
 * is stored once under `chunks/` and has no list (most files in a source tree
 * are this small). The empty blob is always present and never stored. Writers
 * store chunks first and the list last, so a crash cannot leave a blob whose
 * list names a missing chunk; a crash can leave orphan chunks (for gc).
 * Every chunk is re-verified against its digest when read. That the chunks of
 * a list add up to the blob digest is known once the whole blob has been
 * hashed: by its writer, or by a full read. That knowledge is kept as the
 * list's sum, a BLAKE3 of the blob digest and the list bytes (so a list under
 * another blob's key, or damaged, does not match), in `listsums`: a full read
 * of a blob whose sum matches only verifies the chunks, and one without a
 * matching sum (written before sums, or damaged) hashes the whole blob and
 * writes the sum (without it, every full read of a large file hashed it
 * twice). An older fetch-cache ignores the sublevel, and gc deletes a sum
 * with its list.
 *
 * Writes of all writers go through one group commit (storage/group-commit.ts):
 * concurrent small blobs share a LevelDB batch, and one `hasMany` per batch
 * drops chunks already stored: with a batch, an existence read and a list
 * read per file, database round trips were most of the ingest of a tree of
 * small files.
 */

import { type B3Digest, b3Equals, b3ToHex, EMPTY_B3, isB3Digest } from '../castore/digest.js';
import { FetchCacheError } from '../errors.js';
import { blake3, createBlake3Hasher, type Hasher } from '../nix/hashing.js';
import { GroupCommit, type Put } from '../storage/group-commit.js';
import { binarySublevel, type KV } from '../storage/kv.js';
import type { FileSegment, SegmentRun } from './capabilities.js';
import { decodeChunkList, encodeChunkList } from './chunk-list.js';
import { type ChunkStore, InlineChunkStore } from './chunk-store.js';
import { Chunker, type ChunkerParams, DEFAULT_CHUNKER_PARAMS } from './fastcdc.js';
import type { BlobService, BlobStat, BlobWriter, BlobWriterOptions, ChunkMeta } from './service.js';

/** Names of the two sublevels the service makes when given a database. */
export const CHUNKS_SUBLEVEL = 'chunks';
export const BLOBS_SUBLEVEL = 'blobs';
export const LISTSUMS_SUBLEVEL = 'listsums';

/** The sum that says a chunk list was found to add up to its blob digest (see above). */
export function listSum(blob: B3Digest, list: Uint8Array): Uint8Array {
  const h = createBlake3Hasher();
  h.update(blob);
  h.update(list);
  return h.digest();
}

export interface LevelBlobServiceOptions {
  /** FastCDC parameters; changing them only costs dedup against existing data. */
  readonly chunker?: ChunkerParams;
  /**
   * A group of new chunks starts writing once it holds this many bytes
   * (default 8 MiB); writers wait while a full group waits for the one being
   * written, so memory stays near two groups.
   */
  readonly batchBytes?: number;
  /** Reads fetch chunks ahead in windows of about this many bytes (default 1 MiB: as fast as 4 MiB when serving, a third of the memory). */
  readonly readAheadBytes?: number;
  /**
   * Where chunk bytes go, given the chunk index: pack files (packs.ts) for a cache root, chosen by the
   * backend; default the index values themselves (`InlineChunkStore`).
   */
  readonly chunkStore?: ((index: KV) => ChunkStore) | undefined;
}

/** Windows of `readSegments` located and verified ahead of the one being sent. */
const SEGMENT_WINDOWS_AHEAD = 4;

const EMPTY_STAT: BlobStat = Object.freeze({ size: 0, chunks: Object.freeze([]) });

export class LevelBlobService implements BlobService {
  /** The chunk index: its keys are the stored chunks (values: see `chunkStore`). */
  readonly chunks: KV;
  /** Where chunk bytes live: the index values themselves, or pack files. */
  readonly chunkStore: ChunkStore;
  readonly blobs: KV;
  /** Chunk-list sums (see above); without them every first full read of a blob hashes it whole. */
  readonly listSums: KV | undefined;
  /** Full reads that hashed the whole blob (no matching list sum, nor an earlier read here). */
  readonly stats = { wholeBlobHashes: 0 };
  /** List sums being written after a read; `close` waits for them. */
  private readonly sumWrites = new Set<Promise<void>>();
  readonly chunker: ChunkerParams;
  private readonly readAheadBytes: number;
  /**
   * Chunk lists (by their sum, which covers the list bytes) that a full read
   * of their blob found to hash to the blob digest: later full reads here
   * verify every chunk but skip hashing the whole blob a second time, also
   * while the sum is still being written (or could not be).
   */
  private readonly verifiedLists = new VerifiedLists(4096);
  /** Chunks and chunk lists of all writers go through one group commit. */
  readonly commit: GroupCommit;
  readonly closingBlobs: number;

  /**
   * `db` is the database (or a sublevel) in which the service makes the
   * sublevels `chunks` and `blobs`; or pass those two sublevels directly.
   */
  constructor(
    db: KV | { readonly chunks: KV; readonly blobs: KV; readonly listSums?: KV },
    options: LevelBlobServiceOptions = {},
  ) {
    if ('sublevel' in db && typeof db.sublevel === 'function') {
      this.chunks = binarySublevel(db, CHUNKS_SUBLEVEL);
      this.blobs = binarySublevel(db, BLOBS_SUBLEVEL);
      this.listSums = binarySublevel(db, LISTSUMS_SUBLEVEL);
    } else {
      const given = db as { readonly chunks: KV; readonly blobs: KV; readonly listSums?: KV };
      this.chunks = given.chunks;
      this.blobs = given.blobs;
      this.listSums = given.listSums;
    }
    this.chunkStore = options.chunkStore?.(this.chunks) ?? new InlineChunkStore(this.chunks);
    this.chunker = options.chunker ?? DEFAULT_CHUNKER_PARAMS;
    new Chunker(this.chunker); // validates the parameters now rather than on the first write
    this.commit = new GroupCommit({
      groupBytes: options.batchBytes ?? this.chunkStore.groupBytes ?? 8 << 20,
      filter: (puts) => this.unstored(puts),
      lingerMs: this.chunkStore.groupLingerMs,
    });
    this.readAheadBytes = options.readAheadBytes ?? this.chunkStore.readAheadBytes ?? 1 << 20;
    // A group that lingers for more chunks (an object store's) fills from small files only when
    // thousands of them can wait in it; without lingering, a few hundred keep the batches full.
    this.closingBlobs = (this.chunkStore.groupLingerMs ?? 0) > 0 ? 8192 : 256;
  }

  async has(digest: B3Digest): Promise<boolean> {
    checkDigest(digest);
    if (b3Equals(digest, EMPTY_B3)) return true;
    const [list, chunk] = await Promise.all([this.blobs.has(digest), this.chunks.has(digest)]);
    return list || chunk;
  }

  async stat(digest: B3Digest): Promise<BlobStat | undefined> {
    checkDigest(digest);
    if (b3Equals(digest, EMPTY_B3)) return EMPTY_STAT;
    const list = await this.blobs.get(digest);
    if (list !== undefined) return decodeChunkList(list, b3ToHex(digest));
    const chunk = await this.chunkStore.get(digest);
    if (chunk === undefined) return undefined;
    verifyChunk(chunk, digest, digest, 0);
    return { size: chunk.length, chunks: [{ digest, size: chunk.length }] };
  }

  async read(digest: B3Digest, offset = 0): Promise<AsyncIterable<Uint8Array> | undefined> {
    checkDigest(digest);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`bad blob offset ${offset}`);
    if (b3Equals(digest, EMPTY_B3)) {
      checkOffset(offset, 0);
      return nothing();
    }
    // The chunk first: most blobs are one chunk, so most reads take one get.
    const chunk = await this.chunkStore.get(digest);
    if (chunk !== undefined) {
      checkOffset(offset, chunk.length);
      return single(chunk, digest, offset);
    }
    const [list, stored] = await Promise.all([
      this.blobs.get(digest),
      offset === 0 ? this.listSums?.get(digest) : undefined,
    ]);
    if (list === undefined) return undefined;
    const { size, chunks } = decodeChunkList(list, b3ToHex(digest));
    checkOffset(offset, size);
    if (offset > 0) return this.readChunks(digest, chunks, offset, undefined);
    const sum = listSum(digest, list);
    const summed = stored !== undefined && b3Equals(stored, sum);
    return this.readChunks(digest, chunks, offset, summed ? undefined : sum);
  }

  /** The `readSmall` capability (capabilities.ts): a single-chunk blob is one chunk read. */
  async readSmall(digest: B3Digest): Promise<Uint8Array | undefined> {
    checkDigest(digest);
    if (b3Equals(digest, EMPTY_B3)) return new Uint8Array(0);
    const chunk = await this.chunkStore.get(digest);
    if (chunk === undefined) return undefined;
    verifyChunk(chunk, digest, digest, 0);
    return chunk;
  }

  /** The `fileSegments` capability (capabilities.ts), where the chunk store has files (packs.ts). */
  async readSegments(digest: B3Digest): Promise<AsyncIterable<SegmentRun> | undefined> {
    checkDigest(digest);
    const store = this.chunkStore;
    if (store.segments === undefined || this.listSums === undefined) return undefined;
    const [list, stored] = await Promise.all([this.blobs.get(digest), this.listSums.get(digest)]);
    if (list === undefined) return undefined;
    const path = b3ToHex(digest);
    const sum = listSum(digest, list);
    const known =
      (stored !== undefined && b3Equals(stored, sum)) || this.verifiedLists.has(path, b3ToHex(sum));
    if (!known) return undefined;
    return this.segmentRuns(digest, decodeChunkList(list, path).chunks, store.segments.bind(store));
  }

  /** Runs of about readAheadBytes, the next ones located and verified while the current one is sent. */
  private async *segmentRuns(
    digest: B3Digest,
    chunks: readonly ChunkMeta[],
    segments: NonNullable<ChunkStore['segments']>,
  ): AsyncGenerator<SegmentRun> {
    const path = b3ToHex(digest);
    let next = 0;
    let at = 0;
    const fetch = () => {
      const from = next;
      let bytes = 0;
      while (next < chunks.length && (next === from || bytes + chunks[next]!.size <= this.readAheadBytes))
        bytes += chunks[next++]!.size;
      const start = at;
      at += bytes;
      const got = segments(chunks.slice(from, next).map((c) => c.digest));
      got.catch(() => {});
      return { from, start, got };
    };
    // Several windows in flight: without a location cache each is a database read, and their round
    // trips overlap (a 1 GiB `nar` waited ~0.25 s for them one at a time).
    const ahead: ReturnType<typeof fetch>[] = [];
    const more = () => {
      while (ahead.length < SEGMENT_WINDOWS_AHEAD && next < chunks.length) ahead.push(fetch());
    };
    more();
    try {
      while (ahead.length > 0) {
        const window = ahead.shift()!;
        const found = await window.got;
        more();
        const out: FileSegment[] = [];
        let offset = window.start;
        try {
          found.checks.forEach((check, j) => {
            const meta = chunks[window.from + j]!;
            if (check.kind === 'missing') throw missingChunk(path, meta, offset);
            const length = check.kind === 'ok' ? check.segment.length : check.length;
            if (length !== meta.size)
              throw damagedChunk(digest, offset, `${meta.size} bytes`, `${length} bytes`);
            if (check.kind === 'damaged') {
              const actual = check.actual === undefined ? `${length} bytes readable` : b3ToHex(check.actual);
              throw damagedChunk(digest, offset, b3ToHex(meta.digest), actual);
            }
            out.push(check.segment);
            offset += meta.size;
          });
        } catch (e) {
          found.release();
          throw e;
        }
        yield { segments: out, release: found.release };
      }
    } finally {
      // Stopped early (the client left, or a damaged chunk): the runs located ahead are not sent.
      for (const w of ahead)
        w.got.then(
          (r) => r.release(),
          () => {},
        );
    }
  }

  writer(options: BlobWriterOptions = {}): BlobWriter {
    return new LevelBlobWriter(this, new Chunker(this.chunker), options.digest);
  }

  /** Writes pending in the group commit, then the pack files' descriptors. */
  async close(): Promise<void> {
    await Promise.all(this.sumWrites);
    await this.commit.drain();
    await this.chunkStore.close();
  }

  /** Record `sum` for the list of `digest` (a full read found it adds up); a failure only costs a later re-hash. */
  private writeSum(digest: B3Digest, sum: Uint8Array): void {
    if (this.listSums === undefined) return;
    const write = this.listSums
      .put(digest, sum)
      .catch(() => {})
      .finally(() => this.sumWrites.delete(write));
    this.sumWrites.add(write);
  }

  /**
   * Drop from a group the chunks already stored (one `hasMany` for the whole
   * group, and duplicates within it): rewriting them would be harmless but
   * costs a write of their bytes. The rest go to the chunk store (a pack
   * file), which gives back the index rows to put; then it may reuse the
   * memory of all the group's chunk copies. Chunk lists are small and always
   * put.
   */
  private async unstored(puts: readonly Put[]): Promise<readonly Put[]> {
    const chunks = new Map<string, Put>();
    const rest: Put[] = [];
    for (const p of puts) {
      if (p.kv === this.chunks) chunks.set(Buffer.from(p.key).toString('latin1'), p);
      else rest.push(p);
    }
    if (chunks.size === 0) return rest;
    try {
      const unique = [...chunks.values()];
      const present = await this.chunks.hasMany(unique.map((p) => p.key));
      const rows = await this.chunkStore.store(unique.filter((_, i) => !present[i]));
      return [...rows, ...rest];
    } finally {
      this.chunkStore.release(puts.filter((p) => p.kv === this.chunks).map((p) => p.value));
    }
  }

  /**
   * Yields the chunks from the one containing `offset`, fetching a window of
   * chunks ahead while the current one is consumed: the first window is one
   * chunk (a short ranged read fetches little), later ones ~readAheadBytes.
   */
  private async *readChunks(
    digest: B3Digest,
    chunks: readonly ChunkMeta[],
    offset: number,
    /** A full read of a list not known to add up to the blob: its sum (listSum), recorded if it does. */
    unverified: Uint8Array | undefined,
  ) {
    const path = b3ToHex(digest);
    const starts = new Array<number>(chunks.length);
    let total = 0;
    chunks.forEach((c, i) => {
      starts[i] = total;
      total += c.size;
    });
    if (offset === total) return;
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    let skip = offset - starts[lo]!;
    // A full read hashes the whole blob unless the list is known to add up to it (its stored sum, or an
    // earlier full read here); the chunks are verified one by one either way.
    const listKey = unverified === undefined ? undefined : b3ToHex(unverified);
    const hasher =
      listKey !== undefined && !this.verifiedLists.has(path, listKey) ? createBlake3Hasher() : undefined;
    if (hasher !== undefined) this.stats.wholeBlobHashes++;
    type Window = { from: number; to: number; values: Promise<(Uint8Array | undefined)[]> };
    const fetch = (from: number, bytes: number): Window => {
      let to = from;
      let sum = 0;
      while (to < chunks.length && (to === from || sum + chunks[to]!.size <= bytes))
        sum += chunks[to++]!.size;
      const values = this.chunkStore.getMany(chunks.slice(from, to).map((c) => c.digest));
      values.catch(() => {}); // awaited below unless the reader stops early
      return { from, to, values };
    };
    // The next window is fetched while this one is consumed.
    let window: Window | undefined = fetch(lo, 0);
    while (window !== undefined) {
      const values = await window.values;
      const next: Window | undefined =
        window.to < chunks.length ? fetch(window.to, this.readAheadBytes) : undefined;
      for (let k = window.from; k < window.to; k++) {
        const meta = chunks[k]!;
        const bytes = values[k - window.from];
        if (bytes === undefined) throw missingChunk(path, meta, starts[k]!);
        verifyChunk(bytes, meta.digest, digest, starts[k]!, meta.size);
        hasher?.update(bytes);
        yield skip > 0 ? bytes.subarray(skip) : bytes;
        skip = 0;
      }
      window = next;
    }
    if (hasher !== undefined) {
      const actual = hasher.digest();
      if (!b3Equals(actual, digest)) {
        throw new FetchCacheError('ERR_INTEGRITY', `blob ${path} does not hash to its digest`, {
          expected: path,
          actual: b3ToHex(actual),
          path,
        });
      }
      this.verifiedLists.add(path, listKey!);
      this.writeSum(digest, unverified!);
    }
  }
}

/**
 * Streams bytes through the chunker and hands each finished chunk (a copy
 * the chunk store holds: `ChunkStore.hold`) to the service's group commit at
 * once (awaiting `room()`, so memory stays near two groups however many
 * writers run). `close()` waits until every earlier chunk is written, then
 * puts the last chunks and the chunk list in one group: a list is never
 * durable before its chunks. The blob digest of a one-chunk blob is its chunk
 * digest, so a whole-blob hasher is only started (fed a copy of the first
 * chunk) when a second chunk appears: small files are hashed once.
 */
class LevelBlobWriter implements BlobWriter {
  private hasher: Hasher | undefined;
  private readonly list: ChunkMeta[] = [];
  private first: Uint8Array | undefined;
  private size = 0;
  /** Chunks handed to the group commit; awaited before the list is put. */
  private written: Promise<void>[] = [];
  private failure: { error: unknown } | undefined;
  private busy = false;
  private aborted = false;
  private result: Promise<{ digest: B3Digest; size: number }> | undefined;

  constructor(
    private readonly service: LevelBlobService,
    private readonly chunker: Chunker,
    /** The blob digest, computed by the caller (BlobService.writer); then only chunks are hashed here. */
    private readonly given: Promise<B3Digest> | undefined,
  ) {
    given?.catch(() => {}); // awaited by finish(), or dropped with an aborted write
  }

  async write(data: Uint8Array): Promise<void> {
    if (!(data instanceof Uint8Array)) throw new TypeError('BlobWriter.write takes a Uint8Array');
    if (this.result !== undefined || this.aborted) throw new TypeError('write after close or abort');
    if (this.busy) throw new TypeError('await each BlobWriter.write before the next');
    if (this.failure) throw this.failure.error;
    this.busy = true;
    try {
      this.size += data.length;
      const puts: Put[] = [];
      this.chunker.push(data, (c) => puts.push(this.add(c, false)));
      if (puts.length === 0) return;
      const written = this.service.commit.put(puts);
      written.catch((error: unknown) => {
        this.failure ??= { error };
      });
      this.written.push(written);
      await this.service.commit.room();
    } finally {
      this.busy = false;
    }
  }

  close(): Promise<{ digest: B3Digest; size: number }> {
    if (this.result === undefined) {
      if (this.aborted) return Promise.reject(new TypeError('close after abort'));
      if (this.busy) return Promise.reject(new TypeError('close while a write is pending'));
      this.result = this.finish();
    }
    return this.result;
  }

  async abort(): Promise<void> {
    if (this.result !== undefined || this.aborted) return;
    this.aborted = true;
    await Promise.allSettled(this.written);
    this.written = [];
  }

  /**
   * Note a chunk of the blob (its digest, in the list and the whole-blob hash); its put. `bytes` is
   * the chunker's view, valid during this call; `last`: no chunk follows.
   */
  private add(bytes: Uint8Array, last: boolean): Put {
    const digest = blake3(bytes);
    // With a given digest the caller hashes the whole blob; else this does, from the second chunk on.
    if (this.given === undefined) {
      if (this.list.length === 0) this.first = last ? undefined : bytes.slice();
      else {
        if (this.hasher === undefined) {
          this.hasher = createBlake3Hasher();
          this.hasher.update(this.first!);
          this.first = undefined;
        }
        this.hasher.update(bytes);
      }
    }
    this.list.push({ digest, size: bytes.length });
    return { kv: this.service.chunks, key: digest, value: this.service.chunkStore.hold(bytes) };
  }

  private async finish(): Promise<{ digest: B3Digest; size: number }> {
    const last: Put[] = [];
    this.chunker.finish((c) => last.push(this.add(c, true)));
    this.first = undefined;
    if (this.list.length === 0) return { digest: EMPTY_B3.slice(), size: 0 };
    // Many blobs may be closing at once (castore/closing.ts): their last chunks wait for room too.
    if (last.length > 0) await this.service.commit.room();
    // The last chunks of a blob of several join the group of the ones before (a store of pack
    // objects then writes them in the same pack, not a pack of their own); the list follows once
    // all are written. A one-chunk blob is put once its digest is checked.
    const handed = this.list.length > 1 && last.length > 0;
    if (handed) {
      const written = this.service.commit.put(last);
      written.catch(() => {}); // awaited below
      this.written.push(written);
    }
    let digest: B3Digest;
    try {
      await Promise.all(this.written);
      this.written = [];
      if (this.list.length === 1) {
        digest = this.list[0]!.digest;
        if (this.given !== undefined && !b3Equals(await this.given, digest))
          throw new Error('the digest given for a blob is not the digest of the bytes written');
      } else digest = this.given === undefined ? this.hasher!.digest() : (await this.given).slice();
    } catch (e) {
      if (!handed) this.service.chunkStore.release(last.map((p) => p.value)); // never handed to the group commit
      throw e;
    }
    if (this.list.length === 1) {
      await this.service.commit.put(last);
      return { digest, size: this.size };
    }
    const list = encodeChunkList(this.list);
    const sums = this.service.listSums;
    await this.service.commit.put([
      { kv: this.service.blobs, key: digest, value: list },
      // The list adds up to the digest: this writer just hashed the bytes.
      ...(sums === undefined ? [] : [{ kv: sums, key: digest, value: listSum(digest, list) }]),
    ]);
    return { digest, size: this.size };
  }
}

/** A bounded set of (blob, list digest) pairs, oldest dropped first. */
class VerifiedLists {
  private readonly lists = new Map<string, string>();
  constructor(private readonly capacity: number) {}

  has(blob: string, list: string): boolean {
    return this.lists.get(blob) === list;
  }

  add(blob: string, list: string): void {
    this.lists.delete(blob);
    this.lists.set(blob, list);
    if (this.lists.size > this.capacity) this.lists.delete(this.lists.keys().next().value!);
  }
}

function checkDigest(digest: B3Digest): void {
  if (!isB3Digest(digest)) throw new TypeError('a blob digest is a 32-byte Uint8Array');
}

function checkOffset(offset: number, size: number): void {
  if (offset > size) throw new RangeError(`offset ${offset} is beyond the blob size ${size}`);
}

function verifyChunk(bytes: Uint8Array, expected: B3Digest, blob: B3Digest, at: number, size?: number): void {
  if (size !== undefined && bytes.length !== size)
    throw damagedChunk(blob, at, `${size} bytes`, `${bytes.length} bytes`);
  const actual = blake3(bytes);
  if (!b3Equals(actual, expected)) throw damagedChunk(blob, at, b3ToHex(expected), b3ToHex(actual));
}

function damagedChunk(blob: B3Digest, at: number, expected: string, actual: string): FetchCacheError {
  return new FetchCacheError('ERR_INTEGRITY', `damaged chunk at offset ${at} of blob ${b3ToHex(blob)}`, {
    expected,
    actual,
    path: b3ToHex(blob),
    offset: at,
  });
}

function missingChunk(blob: string, meta: ChunkMeta, at: number): FetchCacheError {
  return new FetchCacheError('ERR_INTEGRITY', `blob ${blob} is missing chunk ${b3ToHex(meta.digest)}`, {
    expected: b3ToHex(meta.digest),
    actual: 'missing',
    path: blob,
    offset: at,
  });
}

async function* nothing(): AsyncGenerator<Uint8Array> {}

async function* single(chunk: Uint8Array, digest: B3Digest, offset: number): AsyncGenerator<Uint8Array> {
  verifyChunk(chunk, digest, digest, 0);
  if (offset < chunk.length) yield offset > 0 ? chunk.subarray(offset) : chunk;
}
