/**
 * Chunk bytes in write-once pack objects of an S3-compatible bucket (the
 * `s3://bucket/prefix?endpoint=…&region=…` byte store: backends/chunk-stores.ts),
 * found through the `chunks` index of the blob service like local pack files
 * (chunk-store.ts, packs.ts). Not one object per chunk: at 64 KiB chunks that
 * is ~16.8 M PUTs per TiB, and reads that wait on one request per chunk.
 *
 * Objects, under the store's prefix:
 *
 *   packs/<16 hex id>.pack   `FCPACK1\n`, then records `u32le length | BLAKE3 | bytes`
 *                            (packs.ts's format: readable front to back without the index)
 *   trash/<16 hex id>        an empty marker: that pack had no index row when it was written
 *
 * An index value is packs.ts's 20-byte location: 8-byte pack id | u64le
 * offset | u32le length. Pack ids are random; no key is ever written twice,
 * so the store needs only read-after-create consistency, no conditional PUT.
 *
 * Writing: the blob service gathers new chunks in groups of `groupBytes`
 * (default 24 MiB: ≤ 1 PUT per 16 MiB ingested when the source outruns the
 * upload); `store` writes each group as one pack object (one PUT; a multipart
 * upload above `multipartBytes`) and only then gives back the index rows,
 * which the caller writes in its batch: a killed writer leaves at worst a
 * pack no row names, never a row without its bytes. A group below its size
 * waits for more chunks until none has come for `groupLingerMs` (20 ms; at
 * most 1 s in all: storage/group-commit.ts), and writers of many small files
 * keep thousands of blobs closing meanwhile (`closingBlobs`,
 * castore/closing.ts), so a source tree fills its packs as a large file
 * does; a slow source or a lone blob makes a smaller pack, which compaction
 * merges. Measured: 44 PUTs per GiB ingested (23 MiB per PUT) by
 * bench/s3-packs.mjs against 14,400 for one object per chunk, and 44 per GiB
 * for `fetch tarball` of a 121 MB source tree (16,000 files; 10,800 per GiB
 * before the linger and the closing bound).
 *
 * Reading: one index read for a batch of chunks, then neighbouring chunks of
 * a pack (gaps ≤ 64 KiB) are read with one ranged GET of up to 4 MiB, at most
 * `readConcurrency` GETs in flight on the client's keep-alive connections. A
 * pack that is gone (404) makes the chunks read from it look up their rows
 * once more (compaction moved them); a row still naming a gone pack reads as
 * damaged bytes (the caller's verification fails), a row gone as missing.
 *
 * Deleting: gc deletes index rows; compaction (`compact`, under gc's turn)
 * rewrites the live chunks of mostly-dead or small packs into new packs and
 * moves their rows, each only if it still names the old place (a concurrent
 * write wins). A pack that no row names is not deleted at once: it is marked
 * (`trash/`), and deleted by a later compaction (or `strays({ remove })`,
 * verify --remote --repair) once both the pack and its mark are older than
 * the grace period and the pack still has no row: a reader on another
 * machine that resolved locations before the move keeps streaming, and a
 * pack whose rows are still being written is never taken. Finding packs no
 * row names needs a listing; correctness never does (a listing that misses a
 * pack only leaves garbage for longer).
 */

import { randomBytes } from 'node:crypto';
import { isFetchCacheError } from '../errors.js';
import { blake3 } from '../nix/hashing.js';
import type { Put } from '../storage/group-commit.js';
import type { KV } from '../storage/kv.js';
import type { S3Client } from '../storage/s3.js';
import { type ChunkStore, GetBatcher, type StrayReport } from './chunk-store.js';
import { decodeLocation, encodeLocation, PACK_MAGIC, type PackLocation, RECORD_HEADER } from './packs.js';

const MiB = 1 << 20;
/** Chunks at most this far apart in a pack are read with one ranged GET... */
const RUN_GAP = 64 << 10;
/** ...of at most this many bytes. */
const RUN_BYTES = 4 * MiB;
const ID_SIZE = 8;

export interface S3PackOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Prefix of every key of the store: '' or ending in '/'. */
  readonly prefix: string;
  /** Bytes of new chunks per pack object (default 24 MiB). */
  readonly packBytes?: number | undefined;
  /** A pack above this size is sent as a multipart upload (default 64 MiB)... */
  readonly multipartBytes?: number | undefined;
  /** ...in parts of this size (default 16 MiB). */
  readonly partBytes?: number | undefined;
  /** Ranged GETs in flight at most (default 8). */
  readonly readConcurrency?: number | undefined;
  /** How long a pack no row names is kept before it is deleted (default 1 hour). */
  readonly graceMs?: number | undefined;
  /** Whether `close` closes the client (default true). */
  readonly ownsClient?: boolean | undefined;
}

/** What `compact` did. */
export interface S3CompactReport {
  /** Pack objects deleted. */
  packs: number;
  /** Chunks copied into new packs. */
  moved: number;
  /** Bytes of the deleted packs, less what was copied out of packs rewritten this time. */
  freedBytes: number;
}

/** A bounded number of tasks at a time; the others wait in order. */
class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.running--;
    }
  }
}

interface Located {
  readonly i: number;
  readonly loc: PackLocation;
}

export class S3PackChunkStore implements ChunkStore {
  readonly groupBytes: number;
  /** A group waits this long for more chunks before it becomes a pack (see the file's header). */
  readonly groupLingerMs = 20;
  readonly readAheadBytes = 4 * MiB;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly multipartBytes: number;
  private readonly partBytes: number;
  private readonly graceMs: number;
  private readonly ownsClient: boolean;
  private readonly reads: Limiter;
  private readonly batcher: GetBatcher;
  /** Requests made, by kind (tests and benchmarks count them). */
  readonly stats = { puts: 0, gets: 0, packs: 0 };
  private closed = false;

  constructor(
    readonly index: KV,
    options: S3PackOptions,
  ) {
    this.client = options.client;
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.groupBytes = options.packBytes ?? 24 * MiB;
    this.multipartBytes = options.multipartBytes ?? 64 * MiB;
    this.partBytes = options.partBytes ?? 16 * MiB;
    this.graceMs = options.graceMs ?? 3_600_000;
    this.ownsClient = options.ownsClient ?? true;
    this.reads = new Limiter(options.readConcurrency ?? 8);
    this.batcher = new GetBatcher((keys) => this.getMany(keys));
  }

  /** The key of a pack object. */
  packKey(pack: string): string {
    return `${this.prefix}packs/${pack}.pack`;
  }

  private trashKey(pack: string): string {
    return `${this.prefix}trash/${pack}`;
  }

  get(digest: Uint8Array): Promise<Uint8Array | undefined> {
    return this.batcher.get(digest);
  }

  /** One index read for all; then coalesced ranged GETs; a gone pack makes its chunks look up their rows once more. */
  async getMany(digests: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    this.checkOpen();
    const out: (Uint8Array | undefined)[] = new Array(digests.length);
    let which = digests.map((_, i) => i);
    for (let attempt = 0; attempt < 2 && which.length > 0; attempt++) {
      const rows = await this.index.getMany(which.map((i) => digests[i]!));
      const located: Located[] = [];
      which.forEach((i, m) => {
        const row = rows[m];
        if (row === undefined) {
          out[i] = undefined;
          return;
        }
        const loc = decodeLocation(row);
        if (loc === undefined)
          out[i] = new Uint8Array(0); // a damaged row: fails verification
        else located.push({ i, loc });
      });
      const gone = await this.readRuns(located, out);
      if (attempt === 1) for (const g of gone) out[g.i] = new Uint8Array(0);
      which = gone.map((g) => g.i);
    }
    return out;
  }

  /** Reads every located chunk into `out`; returns those whose pack is gone. */
  private async readRuns(located: Located[], out: (Uint8Array | undefined)[]): Promise<Located[]> {
    const gone: Located[] = [];
    await Promise.all(
      runs(located).map((run) =>
        this.reads.run(async () => {
          const first = run[0]!.loc;
          let end = 0;
          for (const { loc } of run) end = Math.max(end, loc.offset + loc.length);
          let bytes: Buffer;
          try {
            this.stats.gets++;
            bytes = await this.client.getObjectBytes(this.bucket, this.packKey(first.pack), {
              offset: first.offset,
              length: end - first.offset,
            });
          } catch (e) {
            if (!isFetchCacheError(e) || e.code !== 'ERR_NOT_FOUND') throw e;
            gone.push(...run);
            return;
          }
          for (const { i, loc } of run) {
            const from = loc.offset - first.offset;
            out[i] = new Uint8Array(bytes.buffer, bytes.byteOffset + from, loc.length);
          }
        }),
      ),
    );
    return gone;
  }

  hold(bytes: Uint8Array): Uint8Array {
    return bytes.slice();
  }

  release(): void {}

  /** One pack object of all the chunks (uploaded, then their rows given back). */
  async store(puts: readonly Put[]): Promise<Put[]> {
    this.checkOpen();
    if (puts.length === 0) return [];
    const { locations } = await this.writePack(puts.map((p) => ({ digest: p.key, bytes: p.value })));
    return puts.map((p, i) => ({ kv: this.index, key: p.key, value: locations[i]! }));
  }

  /** Writes a new pack object of `chunks`; their locations in it, once it is durable. */
  private async writePack(
    chunks: readonly { digest: Uint8Array; bytes: Uint8Array }[],
  ): Promise<{ pack: string; locations: Uint8Array[] }> {
    const id = randomBytes(ID_SIZE);
    const pack = id.toString('hex');
    const parts: Uint8Array[] = [PACK_MAGIC];
    const locations: Uint8Array[] = [];
    let at = PACK_MAGIC.length;
    for (const c of chunks) {
      const head = Buffer.allocUnsafe(RECORD_HEADER);
      head.writeUInt32LE(c.bytes.length, 0);
      head.set(c.digest, 4);
      parts.push(head, c.bytes);
      locations.push(encodeLocation(id, at + RECORD_HEADER, c.bytes.length));
      at += RECORD_HEADER + c.bytes.length;
    }
    const key = this.packKey(pack);
    if (at <= this.multipartBytes) {
      this.stats.puts++;
      await this.client.putObject(this.bucket, key, Buffer.concat(parts, at));
    } else {
      const r = await this.client.upload(this.bucket, key, iterate(parts), { partSize: this.partBytes });
      this.stats.puts += r.parts;
    }
    this.stats.packs++;
    return { pack, locations };
  }

  storedSize(value: Uint8Array): number {
    return decodeLocation(value)?.length ?? value.length;
  }

  /**
   * Rewrites packs whose live chunks are under `minLiveRatio` of them (default 0.5), and merges packs
   * under `smallPackBytes` (default 4 MiB), into new packs, moving each row that still names the old
   * place; then marks or deletes the packs no row names (`strays`). Called by gc, one at a time.
   */
  async compact(options: { minLiveRatio?: number; smallPackBytes?: number } = {}): Promise<S3CompactReport> {
    this.checkOpen();
    const minLive = options.minLiveRatio ?? 0.5;
    const small = options.smallPackBytes ?? 4 * MiB;
    const live = await this.liveBytes();
    const objects = await this.listPacks();
    const smalls = objects.filter((o) => o.size < small && (live.get(o.pack) ?? 0) > 0);
    const rewrite = new Set(
      objects
        .filter((o) => {
          const l = live.get(o.pack) ?? 0;
          return l > 0 && (l < o.size * minLive || (o.size < small && smalls.length > 1));
        })
        .map((o) => o.pack),
    );
    const report: S3CompactReport = { packs: 0, moved: 0, freedBytes: 0 };
    if (rewrite.size > 0) {
      const moved = await this.rewrite(rewrite);
      report.moved = moved.chunks;
      report.freedBytes -= moved.bytes;
    }
    const swept = await this.sweep(true);
    report.packs = swept.removed;
    report.freedBytes += swept.bytes;
    return report;
  }

  async strays(options: { readonly remove: boolean }): Promise<StrayReport> {
    this.checkOpen();
    const s = await this.sweep(options.remove);
    return { keys: s.keys, bytes: s.strayBytes, removed: s.removed };
  }

  /**
   * Packs no row names: listed; with `remove`, each is marked (once it is older than the grace
   * period), and deleted once its mark is too. Marks of packs that have rows again are dropped.
   */
  private async sweep(
    remove: boolean,
  ): Promise<{ keys: string[]; strayBytes: number; removed: number; bytes: number }> {
    const live = await this.liveBytes();
    const objects = await this.listPacks();
    const marks = new Map<string, number>();
    for await (const o of this.client.listObjects(this.bucket, `${this.prefix}trash/`)) {
      marks.set(o.key.slice(this.prefix.length + 'trash/'.length), o.lastModified);
    }
    const now = Date.now();
    const old = (t: number) => !(now - t < this.graceMs); // NaN (unknown): old
    const out = { keys: [] as string[], strayBytes: 0, removed: 0, bytes: 0 };
    const doomed: string[] = [];
    for (const o of objects) {
      if ((live.get(o.pack) ?? 0) > 0) continue;
      out.keys.push(o.key);
      out.strayBytes += o.size;
      if (!remove || !old(o.lastModified)) continue;
      const mark = marks.get(o.pack);
      if (mark === undefined)
        await this.client.putObject(this.bucket, this.trashKey(o.pack), new Uint8Array(0));
      else if (old(mark)) {
        doomed.push(o.key, this.trashKey(o.pack));
        out.removed++;
        out.bytes += o.size;
      }
    }
    const packs = new Set(objects.map((o) => o.pack));
    for (const pack of marks.keys()) {
      if ((live.get(pack) ?? 0) > 0 || (!packs.has(pack) && remove)) doomed.push(this.trashKey(pack));
    }
    if (remove && doomed.length > 0) await this.client.deleteObjects(this.bucket, doomed);
    return out;
  }

  /** Bytes (records) the index names in each pack: one scan of the index. */
  private async liveBytes(): Promise<Map<string, number>> {
    const live = new Map<string, number>();
    for await (const value of this.index.values()) {
      const loc = decodeLocation(value);
      if (loc !== undefined) live.set(loc.pack, (live.get(loc.pack) ?? 0) + loc.length + RECORD_HEADER);
    }
    return live;
  }

  private async listPacks(): Promise<{ key: string; pack: string; size: number; lastModified: number }[]> {
    const out: { key: string; pack: string; size: number; lastModified: number }[] = [];
    const dir = `${this.prefix}packs/`;
    for await (const o of this.client.listObjects(this.bucket, dir)) {
      const m = /^([0-9a-f]{16})\.pack$/.exec(o.key.slice(dir.length));
      if (m !== null) out.push({ key: o.key, pack: m[1]!, size: o.size, lastModified: o.lastModified });
    }
    return out;
  }

  /**
   * Copies the live chunks of `packs` (each verified; a damaged one stays where it is) into new
   * packs of `groupBytes`, then moves every row that still names the old place.
   */
  private async rewrite(packs: ReadonlySet<string>): Promise<{ chunks: number; bytes: number }> {
    const rows: { digest: Uint8Array; loc: PackLocation; value: Uint8Array }[] = [];
    for await (const [key, value] of this.index.iterator()) {
      const loc = decodeLocation(value);
      if (loc !== undefined && packs.has(loc.pack))
        rows.push({ digest: key.slice(), loc, value: value.slice() });
    }
    const moved = { chunks: 0, bytes: 0 };
    let batch: { digest: Uint8Array; value: Uint8Array; bytes: Uint8Array }[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const { locations } = await this.writePack(batch);
      const now = await this.index.getMany(batch.map((c) => c.digest));
      const puts: { type: 'put'; key: Uint8Array; value: Uint8Array }[] = [];
      batch.forEach((c, k) => {
        const row = now[k];
        if (row !== undefined && Buffer.from(row).equals(c.value))
          puts.push({ type: 'put', key: c.digest, value: locations[k]! });
      });
      if (puts.length > 0) await this.index.batch(puts);
      moved.chunks += puts.length;
      for (const c of batch) moved.bytes += RECORD_HEADER + c.bytes.length;
      batch = [];
      batchBytes = 0;
    };
    const located = rows.map((r, i) => ({ i, loc: r.loc }));
    // A window of runs at a time, so memory stays near one pack.
    for (let from = 0; from < located.length; ) {
      let to = from;
      let bytes = 0;
      while (to < located.length && bytes < RUN_BYTES * 4) bytes += located[to++]!.loc.length;
      const got: (Uint8Array | undefined)[] = new Array(rows.length);
      await this.readRuns(located.slice(from, to), got);
      for (let k = from; k < to; k++) {
        const bytes = got[k];
        const r = rows[k]!;
        if (bytes === undefined || !Buffer.from(blake3(bytes)).equals(r.digest)) continue;
        batch.push({ digest: r.digest, value: r.value, bytes });
        batchBytes += bytes.length;
        if (batchBytes >= this.groupBytes) await flush();
      }
      from = to;
    }
    await flush();
    return moved;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) await this.client.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new TypeError('S3 pack store is closed');
  }
}

/**
 * Located chunks sorted by pack and offset, cut into runs one ranged GET reads: neighbours at most
 * RUN_GAP apart, RUN_BYTES at most (a chunk asked for twice is read once).
 */
function runs(located: readonly Located[]): Located[][] {
  const sorted = [...located].sort((a, b) =>
    a.loc.pack < b.loc.pack ? -1 : a.loc.pack > b.loc.pack ? 1 : a.loc.offset - b.loc.offset,
  );
  const out: Located[][] = [];
  let run: Located[] = [];
  let end = 0;
  for (const l of sorted) {
    const first = run[0]?.loc;
    const { pack, offset, length } = l.loc;
    if (
      first === undefined ||
      pack !== first.pack ||
      offset - end > RUN_GAP ||
      Math.max(end, offset + length) - first.offset > RUN_BYTES
    ) {
      if (run.length > 0) out.push(run);
      run = [];
      end = 0;
    }
    run.push(l);
    end = Math.max(end, offset + length);
  }
  if (run.length > 0) out.push(run);
  return out;
}

async function* iterate(parts: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* parts;
}
