/**
 * Garbage collection (`fetch-cache gc`), over the store's maintenance and
 * coordination services. Marks everything the path infos reach (root node →
 * directories → blobs → chunks, maintenance/reach.ts) and deletes the
 * chunks, chunk lists, directories, NAR-sum cache entries, last-use records,
 * NAR-hash index entries and fetch-index entries nobody reaches. With
 * `maxSize` it then evicts least recently used path infos (by the last uses
 * the coordination service records) until the reachable store fits, never a
 * path a reader holds or one used within `keepRecentMs`.
 *
 * One gc runs at a time: a second one waits for the first
 * (`coordination.gcTurn`). Safe while fetches and `serve` run, in this or
 * other processes (coordination/service.ts):
 * 1. Without any lock: snapshot the path infos, mark, list candidates (every
 *    stored key not marked). This is the slow part; ingests go on.
 * 2. Exclusive against ingests (`coordination.exclusive`): new ingests wait, running ones
 *    are waited for. Path infos written or changed since the snapshot are
 *    marked too (an ingest may have reused a candidate chunk), then
 *    evictions, then deletions in batches — readers keep being served
 *    between batches, and nothing reachable is ever deleted.
 * A crash at any point leaves only garbage, never a path info pointing at
 * missing data: evicted path infos are deleted before their data. A gc
 * killed mid-way leaves a stale record that the next ingest or gc removes
 * (its process is gone), so gc can never get stuck (attic#65).
 */

import type { Cache } from '../cache.js';
import { bytesEqual } from '../castore/bytes.js';
import { encodeEntry } from '../castore/nodes.js';
import type { FetchIndexEntry } from '../fetchers/fetch-index.js';
import { closureOf, keyBytes, keyOf, RefCounts, readAll } from '../maintenance/reach.js';
import type { Kind, Maintenance } from '../maintenance/service.js';
import { parseStorePathBaseName, storePathBaseName } from '../nix/store-path.js';
import type { PathInfo } from '../pathinfo/path-info.js';
import { decodePathInfo } from '../pathinfo/proto.js';

/**
 * How `gc` runs: the size to evict down to, recent paths to keep, batch size, how long to wait for another
 * gc.
 */
export interface GcOptions {
  /** After collecting garbage, evict least recently used paths until the store holds at most this many bytes. */
  readonly maxSize?: number | undefined;
  /** Never evict a path used within this many milliseconds (default 0). */
  readonly keepRecentMs?: number | undefined;
  /** Keys deleted per batch (default 1000). */
  readonly batchSize?: number | undefined;
  /** Longest wait for another gc, and for running fetches before the exclusive phase (default 10 minutes each). */
  readonly waitTimeoutMs?: number | undefined;
  readonly onWait?: ((why: string) => void) | undefined;
  readonly now?: (() => number) | undefined;
}

/**
 * What `gc` did: bytes freed, records deleted by kind, paths evicted, packs compacted, and what is left
 * (`fetch-cache gc --json`).
 */
export interface GcReport {
  /** Bytes of stored values deleted (chunks, chunk lists, directories, path infos, small records). */
  freedBytes: number;
  deleted: {
    pathInfos: number;
    directories: number;
    chunkLists: number;
    chunks: number;
    narSums: number;
    records: number;
  };
  /** Store paths evicted by `maxSize`, oldest use first. */
  evicted: string[];
  /** Pack files rewritten or deleted to give back the space of deleted chunks (blob/packs.ts). */
  compacted: { packs: number; moved: number; freedBytes: number };
  /** Paths left, and the bytes their data takes (chunks, chunk lists, directories). */
  paths: number;
  storedBytes: number;
  durationMs: number;
}

const EMPTY_NAME = new Uint8Array(0);

/** A path info from its raw value, or undefined when it is damaged (verify reports those). */
export function decodeStored(key: string, value: Uint8Array): PathInfo | undefined {
  try {
    const info = decodePathInfo(value);
    return keyOf(info.storePath.digest) === key ? info : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Garbage collection (`fetch-cache gc`): deletes what no path info reaches and gives pack space back; with
 * `maxSize`, then evicts least recently used paths until the store fits. Safe while fetches and servers
 * run; one gc at a time.
 */
export async function gc(cache: Cache, options: GcOptions = {}): Promise<GcReport> {
  const endTurn = await cache.coordination.gcTurn({
    timeoutMs: options.waitTimeoutMs,
    onWait: options.onWait,
  });
  try {
    return await collect(cache, options);
  } finally {
    await endTurn();
  }
}

async function collect(cache: Cache, options: GcOptions): Promise<GcReport> {
  const started = performance.now();
  const now = options.now ?? Date.now;
  const batchSize = options.batchSize ?? 1000;
  const store = cache.maintenance;
  const report: GcReport = {
    freedBytes: 0,
    deleted: { pathInfos: 0, directories: 0, chunkLists: 0, chunks: 0, narSums: 0, records: 0 },
    evicted: [],
    compacted: { packs: 0, moved: 0, freedBytes: 0 },
    paths: 0,
    storedBytes: 0,
    durationMs: 0,
  };

  // Phase 1, concurrent with everything.
  const first = await readAll(store, 'pathInfos');
  const refs = new RefCounts();
  for (const [key, value] of first) {
    const info = decodeStored(key, value);
    if (info !== undefined) refs.add(await closureOf(store, info.node));
  }
  const candidates = {
    dirs: await unmarked(store, 'directories', (k) => refs.live('dirs', k)),
    lists: await unmarked(store, 'chunkLists', (k) => refs.live('lists', k)),
    // A list's sum goes with it (a sum deleted too early only costs a re-hash on the next full read).
    listSums: await unmarked(store, 'listSums', (k) => refs.live('lists', k)),
    chunks: await unmarked(store, 'chunks', (k) => refs.live('chunks', k)),
  };

  // Phase 2, exclusive against ingests.
  const end = await cache.coordination.exclusive({
    timeoutMs: options.waitTimeoutMs,
    onWait: options.onWait,
  });
  try {
    const second = await readAll(store, 'pathInfos');
    const live = new Map<string, PathInfo>();
    for (const [key, value] of second) {
      const info = decodeStored(key, value);
      if (info === undefined) continue;
      live.set(key, info);
      const before = first.get(key);
      if (before === undefined || !bytesEqual(before, value)) refs.add(await closureOf(store, info.node));
    }

    if (options.maxSize !== undefined) {
      let stored = refs.storedBytes();
      const atimes = await cache.coordination.lastUses();
      const held = await cache.coordination.held();
      const keepAfter = now() - (options.keepRecentMs ?? 0);
      const lastUse = (info: PathInfo) => atimes.get(Buffer.from(info.storePath.digest).toString('hex')) ?? 0;
      const order = [...live.entries()]
        .filter(([, info]) => !held.has(Buffer.from(info.storePath.digest).toString('hex')))
        .filter(([, info]) => lastUse(info) <= keepAfter)
        .sort(([ka, a], [kb, b]) => lastUse(a) - lastUse(b) || (ka < kb ? -1 : 1));
      for (const [key, info] of order) {
        if (stored <= options.maxSize) break;
        // The path info goes first: a crash after this leaves only garbage.
        await cache.pathInfos.delete(info.storePath.digest);
        report.freedBytes += second.get(key)!.length;
        report.deleted.pathInfos++;
        report.evicted.push(storePathBaseName(info.storePath));
        live.delete(key);
        const { freed, bytes } = refs.remove(await closureOf(store, info.node));
        stored -= bytes;
        candidates.dirs.push(...freed.dirs);
        candidates.lists.push(...freed.lists);
        candidates.listSums.push(...freed.lists);
        candidates.chunks.push(...freed.chunks);
      }
    }

    const sweep = async (kind: Kind, keys: readonly string[]) => {
      const r = await store.delete(kind, keys.map(keyBytes), { batchSize });
      report.freedBytes += r.bytes;
      return r.count;
    };
    // Metadata that names dead paths or nodes first, then the data, roots before leaves.
    const liveNodes = new Set([...live.values()].map((i) => keyOf(encodeEntry(EMPTY_NAME, i.node))));
    report.deleted.narSums += await sweep(
      'narSums',
      await unmarked(store, 'narSums', (k) => liveNodes.has(k)),
    );
    const uses = [...(await cache.coordination.lastUses()).keys()];
    report.deleted.records += await cache.coordination.forgetUses(
      uses.filter((hex) => !live.has(keyOf(Buffer.from(hex, 'hex')))),
    );
    report.deleted.records += await sweep(
      'narHashIndex',
      await unmarked(store, 'narHashIndex', (k) => live.has(k.slice(32))),
    );
    report.deleted.records += await sweep('fetchIndex', await deadFetchEntries(store, live));
    report.deleted.directories += await sweep(
      'directories',
      candidates.dirs.filter((k) => !refs.live('dirs', k)),
    );
    report.deleted.chunkLists += await sweep(
      'chunkLists',
      candidates.lists.filter((k) => !refs.live('lists', k)),
    );
    report.deleted.records += await sweep(
      'listSums',
      candidates.listSums.filter((k) => !refs.live('lists', k)),
    );
    report.deleted.chunks += await sweep(
      'chunks',
      candidates.chunks.filter((k) => !refs.live('chunks', k)),
    );
    report.compacted = await store.compact();
    report.paths = live.size;
    report.storedBytes = refs.storedBytes();
  } finally {
    await end();
  }
  report.durationMs = Math.round(performance.now() - started);
  return report;
}

/** Keys of a kind for which `isLive` is false. */
async function unmarked(store: Maintenance, kind: Kind, isLive: (key: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  for await (const key of store.keys(kind)) {
    const k = keyOf(key);
    if (!isLive(k)) out.push(k);
  }
  return out;
}

/** Fetch-index entries whose store path has no path info (any more). */
async function deadFetchEntries(store: Maintenance, live: Map<string, PathInfo>): Promise<string[]> {
  const out: string[] = [];
  for await (const [key, value] of store.entries('fetchIndex')) {
    let alive = false;
    try {
      const entry = JSON.parse(Buffer.from(value).toString('utf8')) as FetchIndexEntry;
      alive = live.has(keyOf(parseStorePathBaseName(entry.storePath).digest));
    } catch {
      alive = false;
    }
    if (!alive) out.push(keyOf(key));
  }
  return out;
}
