/**
 * `fetch-cache verify`: proves that every path info (or the ones named)
 * still describes intact data. Per path: the path info must decode; its
 * tree is rendered as a NAR, which reads and re-hashes every directory,
 * chunk list, chunk and blob it reaches (the services verify on read), and
 * the NAR's sha256 and size must equal the recorded ones. A content
 * address must make the store path and describe the content: a NAR SHA-256
 * one is the recorded NAR hash (pathinfo/path-info.ts), a flat one the
 * file's own hash, another NAR one the hash of the rendered NAR. A path the
 * fetch index records as fetched must have one (a fetch always writes it;
 * a path info without it there was put by an upload from before uploads
 * were checked). A path that fails is walked again piece by piece
 * (damage.ts) to say exactly what is missing or damaged — this is what
 * attic users could not find out (attic#211, #330).
 *
 * `repair`: damaged values are deleted, then the path is fetched again from
 * each source the fetch index recorded for it (sources.ts), pinned to its
 * own content address, and checked again. A path that cannot be repaired
 * loses its path info, so the next fetch or upload of it starts afresh
 * instead of being answered from broken data. Without `repair`, verify
 * changes nothing except a wrong entry in the NAR-sum cache, which it drops.
 */

import type { Cache } from '../cache.js';
import { bytesEqual } from '../castore/bytes.js';
import { encodeEntry } from '../castore/nodes.js';
import { FetchCacheError, isFetchCacheError } from '../errors.js';
import type { Fetcher } from '../fetchers/base.js';
import type { FetchSpec } from '../fetchers/types.js';
import { keyBytes, keyOf } from '../maintenance/reach.js';
import type { Maintenance } from '../maintenance/service.js';
import { computeNarSum, type NarSum } from '../nar-render/nar-calc.js';
import { renderNar } from '../nar-render/render.js';
import { toSRI } from '../nix/hash.js';
import { createHasher, type HashAlgo } from '../nix/hashing.js';
import { encodeNix32 } from '../nix/nixbase32.js';
import { formatStorePath, type StorePath, storePathBaseName } from '../nix/store-path.js';
import { contentAddressProblem, type PathInfo } from '../pathinfo/path-info.js';
import { locateDamage } from './damage.js';
import { decodeStored } from './gc.js';
import { pinnedTo, recordedSources } from './sources.js';

/** Which paths `verify` checks, whether it repairs them, and how it tells progress. */
export interface VerifyOptions {
  /** Only these paths (default: every path info). */
  readonly paths?: readonly StorePath[] | undefined;
  readonly repair?: boolean | undefined;
  /** Fetches for repairs (default: a new Fetcher on the cache). */
  readonly fetcher?: Pick<Fetcher, 'ingestAndPersist'> | undefined;
  /** Told after each path. */
  readonly onPath?: ((path: string, ok: boolean) => void) | undefined;
}

/**
 * A path `verify` found damaged: what is wrong with it, and with `repair`, whether it was repaired or
 * removed.
 */
export interface DamagedPath {
  /** The full store path (`<storeDir>/<hash>-<name>`; just the hash when the path info itself is unreadable). */
  path: string;
  problems: string[];
  /** With `repair`: fetched again and now intact. */
  repaired?: boolean;
  /** With `repair`: could not be repaired, its path info was deleted. */
  removed?: boolean;
}

/** What `verify` found (`fetch-cache verify --json`): paths checked, the damaged ones, NAR bytes hashed. */
export interface VerifyReport {
  checked: number;
  damaged: DamagedPath[];
  /** NAR bytes rendered and hashed. */
  bytes: number;
  durationMs: number;
}

const EMPTY_NAME = new Uint8Array(0);

/**
 * Verification (`fetch-cache verify`): re-reads and re-hashes everything the paths reach, checks NAR hash,
 * size and content address; with `repair`, deletes damaged values and fetches the paths again from their
 * recorded sources. Changes nothing without `repair`.
 */
export async function verify(cache: Cache, options: VerifyOptions = {}): Promise<VerifyReport> {
  const started = performance.now();
  const store = cache.maintenance;
  const isCorruption = (e: unknown) => store.damage(e) !== undefined;
  const report: VerifyReport = { checked: 0, damaged: [], bytes: 0, durationMs: 0 };
  const targets: [string, Uint8Array | undefined][] = [];
  if (options.paths === undefined) {
    try {
      for await (const [key, value] of store.entries('pathInfos')) targets.push([keyOf(key), value]);
    } catch (e) {
      if (!isCorruption(e)) throw e;
      databaseDamage(cache, report, e);
    }
  } else {
    for (const sp of options.paths) {
      const [value] = await store.getMany('pathInfos', [sp.digest]);
      const info = value === undefined ? undefined : decodeStored(keyOf(sp.digest), value);
      if (value === undefined || (info !== undefined && info.storePath.name !== sp.name)) {
        const path = formatStorePath(sp, cache.storeDir);
        throw new FetchCacheError('ERR_NOT_FOUND', `path '${path}' is not in the cache`, { path });
      }
      targets.push([keyOf(sp.digest), value]);
    }
  }
  let sources: ReadonlyMap<string, readonly FetchSpec[]> = new Map();
  try {
    sources = await recordedSources(cache);
  } catch (e) {
    if (!isCorruption(e)) throw e;
    databaseDamage(cache, report, e);
  }
  const broken: { key: string; info: PathInfo | undefined; entry: DamagedPath }[] = [];
  for (const [key, value] of targets) {
    report.checked++;
    let r: Checked;
    try {
      r = await checkPath(cache, sources, key, value);
    } catch (e) {
      if (!isCorruption(e)) throw e;
      // The database itself could not be read: that is damage too (verify --repair rebuilds it).
      const info = value === undefined ? undefined : decodeStored(key, value);
      const path =
        info === undefined
          ? `${cache.storeDir}/${encodeNix32(keyBytes(key))}`
          : formatStorePath(info.storePath, cache.storeDir);
      databaseDamage(cache, report, e);
      r = {
        path,
        info,
        problems: [`cannot read its data from the database: ${(e as Error).message}`],
        bytes: 0,
      };
    }
    report.bytes += r.bytes;
    options.onPath?.(r.path, r.problems.length === 0);
    if (r.problems.length > 0) {
      const entry: DamagedPath = { path: r.path, problems: r.problems };
      report.damaged.push(entry);
      broken.push({ key, info: r.info, entry });
    }
  }
  if (options.repair && broken.length > 0) await repair(cache, sources, broken, options);
  report.durationMs = Math.round(performance.now() - started);
  return report;
}

/** The database is damaged (a read found it so): one entry for it in the report, named as the store names it. */
function databaseDamage(cache: Cache, report: VerifyReport, e: unknown): void {
  const path = cache.maintenance.database;
  if (report.damaged.some((d) => d.path === path)) return;
  report.damaged.push({
    path,
    problems: [
      `the database is damaged: ${(e as Error).message} (stop every process using the root, then run verify --repair)`,
    ],
  });
}

interface Checked {
  path: string;
  info: PathInfo | undefined;
  problems: string[];
  bytes: number;
}

async function checkPath(
  cache: Cache,
  sources: ReadonlyMap<string, readonly FetchSpec[]>,
  key: string,
  value: Uint8Array | undefined,
): Promise<Checked> {
  const info = value === undefined ? undefined : decodeStored(key, value);
  if (info === undefined) {
    const path = `${cache.storeDir}/${encodeNix32(keyBytes(key))}`;
    return { path, info, problems: ['the path info is missing or cannot be decoded'], bytes: 0 };
  }
  const path = formatStorePath(info.storePath, cache.storeDir);
  const problems: string[] = [];
  const caProblem = contentAddressProblem(info, cache.storeDir);
  if (caProblem !== undefined) problems.push(caProblem);
  const fetchedFrom = sources.get(storePathBaseName(info.storePath))?.[0];
  if (info.ca === undefined && fetchedFrom !== undefined) {
    problems.push(`fetched from ${sourceLabel(fetchedFrom)}, but its path info has no content address`);
  }
  let sum: NarSum | undefined;
  try {
    sum = await computeNarSum(info.node, cache);
  } catch (e) {
    if (!isFetchCacheError(e)) throw e;
    problems.push(`cannot render the NAR: ${e.message}`);
  }
  if (sum !== undefined) {
    if (!bytesEqual(sum.narSha256, info.narSha256)) {
      problems.push(
        `NAR hash is ${toSRI({ algo: 'sha256', digest: sum.narSha256 })}, recorded ${toSRI({ algo: 'sha256', digest: info.narSha256 })}`,
      );
    }
    if (sum.narSize !== info.narSize) problems.push(`NAR size is ${sum.narSize}, recorded ${info.narSize}`);
    const [cached] = await cache.maintenance.getMany('narSums', [encodeEntry(EMPTY_NAME, info.node)]);
    if (
      cached !== undefined &&
      (cached.length !== 40 || !bytesEqual(cached.subarray(0, 32), sum.narSha256))
    ) {
      await cache.narCalc.forget(info.node);
    }
    problems.push(...(await checkContentAddress(cache, info)));
  }
  if (problems.length > 0) problems.push(...(await locateDamage(cache.maintenance, info.node)).problems);
  return { path, info, problems, bytes: sum?.narSize ?? 0 };
}

function sourceLabel(spec: FetchSpec): string {
  return spec.type === 'path' ? spec.path : spec.url;
}

/**
 * The CA must describe the content: flat = the file's hash, NAR = the NAR's hash (NAR SHA-256 is the
 * recorded NAR hash, checked against the content above and against the CA by contentAddressProblem).
 */
async function checkContentAddress(cache: Cache, info: PathInfo): Promise<string[]> {
  const ca = info.ca;
  if (ca === undefined) return [];
  if (ca.method === 'nar' && ca.hash.algo !== 'sha256') {
    const actual = { algo: ca.hash.algo, digest: await narHashWith(cache, info, ca.hash.algo) };
    if (!bytesEqual(actual.digest, ca.hash.digest)) {
      return [`NAR ${ca.hash.algo} is ${toSRI(actual)}, content address says ${toSRI(ca.hash)}`];
    }
  }
  if (ca.method === 'flat') {
    if (info.node.type !== 'file') return ['flat content address on something that is not a file'];
    const hasher = createHasher(ca.hash.algo);
    const chunks = await cache.blobs.read(info.node.digest);
    if (chunks === undefined) return ['file blob is missing'];
    for await (const c of chunks) hasher.update(c);
    const actual = { algo: ca.hash.algo, digest: hasher.digest() };
    if (!bytesEqual(actual.digest, ca.hash.digest)) {
      return [`file hash is ${toSRI(actual)}, content address says ${toSRI(ca.hash)}`];
    }
  }
  return [];
}

/** The NAR of a path hashed with another algorithm than SHA-256 (rendered again; rare). */
async function narHashWith(cache: Cache, info: PathInfo, algo: HashAlgo): Promise<Uint8Array> {
  const hasher = createHasher(algo);
  for await (const chunk of renderNar(info.node, cache)) hasher.update(chunk);
  return hasher.digest();
}

async function repair(
  cache: Cache,
  sources: ReadonlyMap<string, readonly FetchSpec[]>,
  broken: { key: string; info: PathInfo | undefined; entry: DamagedPath }[],
  options: VerifyOptions,
): Promise<void> {
  const store: Maintenance = cache.maintenance;
  let fetcher = options.fetcher;
  if (fetcher === undefined) {
    const { Fetcher } = await import('../fetchers/base.js');
    fetcher = new Fetcher(cache);
  }
  // Delete every damaged value first: paths may share them, and a re-fetch only writes what is absent.
  for (const b of broken) {
    if (b.info === undefined) continue;
    const { damaged } = await locateDamage(store, b.info.node).catch((e: unknown) => {
      if (store.damage(e) === undefined) throw e;
      return { damaged: { dirs: [], lists: [], chunks: [] } };
    });
    await store.delete('directories', damaged.dirs);
    await store.delete('chunkLists', damaged.lists);
    await store.delete('chunks', damaged.chunks);
    await cache.narCalc.forget(b.info.node);
  }
  for (const b of broken) {
    const info = b.info;
    if (info !== undefined) {
      for (const spec of sources.get(storePathBaseName(info.storePath)) ?? []) {
        const pinned = pinnedTo(spec, info);
        if (pinned === undefined) continue;
        try {
          await fetcher.ingestAndPersist(info.storePath.name, pinned);
        } catch (e) {
          if (!isFetchCacheError(e)) throw e;
          b.entry.problems.push(`repair from ${sourceLabel(spec)} failed: ${e.message}`);
          continue;
        }
        const [value] = await store.getMany('pathInfos', [info.storePath.digest]);
        const again = await checkPath(cache, sources, b.key, value);
        if (again.problems.length === 0) {
          b.entry.repaired = true;
          break;
        }
      }
    }
    if (b.entry.repaired) continue;
    if (info !== undefined) await cache.pathInfos.delete(info.storePath.digest);
    await store.delete('pathInfos', [keyBytes(b.key)]);
    b.entry.removed = true;
  }
}
