/**
 * Uploads as `nix copy --to http://…` sends them (docs/formats.md §9):
 * first `PUT nar/<FileHash nix32>.nar[.xz|.zst|.bz2]`, then
 * `PUT <hashpart>.narinfo`.
 *
 * A NAR body streams through SHA-256 (its name must be that hash), the
 * decompressor chosen by magic bytes, and the strict NAR parser into castore;
 * nothing is buffered whole. The result waits in memory as *pending*, found
 * by NAR hash and by file hash, until its narinfo arrives. The narinfo commit
 * checks everything before the path info is written, in one step: NarHash
 * and NarSize equal what was ingested (or what a stored path with the same
 * NAR has), FileHash/FileSize equal the uploaded file, StorePath matches the
 * URL, every reference is already in the cache (Nix uploads in topological
 * order), a CA recomputes to the store path, and Sig lines are well-formed
 * (they are kept as sent). A bad NAR, a mismatch or a dropped connection
 * leaves no path info; blobs already written are unreferenced until gc.
 * A store path already in the cache never changes its content (the path-info
 * service refuses it, src/pathinfo/service.ts): a narinfo for it with another
 * NarHash, NarSize, References or CA (a missing CA included) is 409 Conflict
 * and changes nothing; one with the same content only adds its Sig lines.
 * Pending uploads are kept by the store's coordination service
 * (coordination/service.ts), so a narinfo may reach another server of the
 * same store; they expire (after an hour), and on a cache root are lost on
 * restart: Nix then fails the copy and a re-run repeats it.
 *
 * A NAR upload is bounded: past `maxBytes` of the file as sent (a declared
 * Content-Length is checked before anything is read) or of the NAR it
 * decompresses to, it is 413 and nothing becomes pending; what was already
 * ingested is unreferenced, so gc deletes it. The default,
 * DEFAULT_MAX_UPLOAD_BYTES, is 4 GiB: Hydra refuses build outputs past its
 * `max_output_size` (2 GiB by default, 3 GB on hydra.nixos.org), so every
 * path cache.nixos.org serves fits, and one upload cannot fill a disk with a
 * few KiB of xz that expand without end.
 *
 * gc (src/ops) runs beside the server. Ingesting a NAR and committing a
 * narinfo each run under `coordination.ingest`, but not the wait
 * in between — a lease held until a narinfo that may never come would keep
 * gc out of its exclusive phase indefinitely. So a gc in that gap deletes a
 * pending upload's data (no path info reaches it yet); the commit therefore
 * checks, under its lease, that everything the node reaches is still stored
 * (`missingData`). If not, it answers 409 Conflict, drops the pending entry
 * (so HEAD on the NAR says 404 again) and stores nothing: Nix does not retry
 * a 409 (a retried narinfo alone could never succeed), and the next
 * `nix copy` uploads the NAR again.
 */

import { bytesEqual } from '../bytes.js';
import type { Node } from '../castore/nodes.js';
import type { PendingUpload, PendingUploads } from '../coordination/service.js';
import { isFetchCacheError } from '../errors.js';
import { type Compression, decompress, sniffCompression } from '../fetchers/decompress.js';
import { missingData } from '../maintenance/reach.js';
import { ingestNar } from '../nar-render/ingest-nar.js';
import { renderNar } from '../nar-render/render.js';
import { type ContentAddress, formatContentAddress, parseContentAddress } from '../nix/content-address.js';
import { toSRI } from '../nix/hash.js';
import { createHasher, type HashAlgo } from '../nix/hashing.js';
import { type NarInfo, parseNarInfo } from '../nix/narinfo.js';
import { decodeNix32, encodeNix32 } from '../nix/nixbase32.js';
import { parseSignature } from '../nix/signing.js';
import {
  formatStorePath,
  makeFixedOutputPath,
  makeTextPath,
  parseStorePath,
  parseStorePathBaseName,
  type StorePath,
  storePathEquals,
  storePathHashPart,
} from '../nix/store-path.js';
import type { PathInfo } from '../pathinfo/path-info.js';
import { HttpError } from './http.js';
import type { ServerStore } from './services.js';

/** Largest uploaded NAR file, and largest NAR it decompresses to, by default (see the header). */
export const DEFAULT_MAX_UPLOAD_BYTES = 4 * 1024 ** 3;

/** 413 for an upload past `maxBytes`. */
export function uploadTooLarge(what: string, maxBytes: number): HttpError {
  return new HttpError(413, `${what} is over the upload limit of ${maxBytes} bytes`);
}

/** File extensions Nix gives uploaded NARs, by narinfo `Compression` (none has none). */
export const NAR_EXTENSIONS: Readonly<Record<string, Compression>> = {
  '': 'none',
  '.xz': 'xz',
  '.zst': 'zstd',
  '.bz2': 'bzip2',
  '.gz': 'gzip',
};

function badRequest(message: string): HttpError {
  return new HttpError(400, message);
}

/** A 52-character nix32 SHA-256 from a URL name, else 400. */
export function parseNarName(name: string): Uint8Array {
  if (!/^[0-9a-df-np-sv-z]{52}$/.test(name)) throw badRequest(`'${name}' is not a nix32 SHA-256`);
  try {
    return decodeNix32(name);
  } catch {
    // 52 characters can still overflow 256 bits.
    throw badRequest(`'${name}' is not a nix32 SHA-256`);
  }
}

/**
 * Ingest an uploaded NAR file whose SHA-256 must be `fileSha256`. The
 * compression is read from the magic bytes and must agree with the URL's
 * extension. Throws HttpError 400 for anything malformed or mismatched, 413
 * past `maxBytes` of the file or of the NAR.
 */
export async function receiveNar(
  body: AsyncIterable<Uint8Array>,
  fileSha256: Uint8Array,
  extension: string,
  store: ServerStore,
  maxBytes: number = DEFAULT_MAX_UPLOAD_BYTES,
  now: () => number = Date.now,
): Promise<PendingUpload> {
  const declared = NAR_EXTENSIONS[extension];
  if (declared === undefined) throw badRequest(`unsupported NAR file extension '${extension}'`);
  const fileHasher = createHasher('sha256');
  let fileSize = 0;
  let head: Uint8Array | undefined;
  // Set when a limit is passed: the error thrown then may reach here wrapped by the decoder or the parser.
  let tooLarge: HttpError | undefined;
  async function* tap(): AsyncGenerator<Uint8Array> {
    for await (const chunk of body) {
      if (head === undefined) head = chunk.slice(0, 6);
      fileHasher.update(chunk);
      fileSize += chunk.length;
      if (fileSize > maxBytes) {
        tooLarge = uploadTooLarge('the uploaded file', maxBytes);
        throw tooLarge;
      }
      yield chunk;
    }
  }
  async function* bounded(nar: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    let narSize = 0;
    for await (const chunk of nar) {
      narSize += chunk.length;
      if (narSize > maxBytes) {
        tooLarge = uploadTooLarge('the uploaded NAR', maxBytes);
        throw tooLarge;
      }
      yield chunk;
    }
  }
  let ingested: Awaited<ReturnType<typeof ingestNar>>;
  try {
    ingested = await store.coordination.ingest(() => ingestNar(bounded(decompress(tap())), store));
  } catch (e) {
    if (tooLarge !== undefined) throw tooLarge;
    if (isFetchCacheError(e)) throw badRequest(`bad NAR upload: ${e.message}`);
    throw e;
  }
  const actual = fileHasher.digest();
  if (!bytesEqual(actual, fileSha256)) {
    throw badRequest(
      `uploaded file has SHA-256 ${encodeNix32(actual)}, its name says ${encodeNix32(fileSha256)}`,
    );
  }
  const compression = sniffCompression(head ?? new Uint8Array(0));
  if (compression !== declared) {
    throw badRequest(`uploaded file is ${compression}-compressed but named '${extension || '.nar'}'`);
  }
  return {
    node: ingested.node,
    narSha256: ingested.narSha256,
    narSize: ingested.narSize,
    fileSha256: actual,
    fileSize,
    compression,
    receivedAt: now(),
  };
}

/** Hash of a regular file's bytes (flat and text content addresses). */
async function flatHash(node: Node, algo: HashAlgo, store: ServerStore, what: string): Promise<Uint8Array> {
  if (node.type !== 'file') throw badRequest(`${what} content address needs a single regular file`);
  const h = createHasher(algo);
  const chunks = await store.blobs.read(node.digest);
  if (chunks === undefined) throw new Error('uploaded blob vanished');
  for await (const c of chunks) h.update(c);
  return h.digest();
}

async function narHashWith(node: Node, algo: HashAlgo, store: ServerStore): Promise<Uint8Array> {
  const h = createHasher(algo);
  for await (const c of renderNar(node, store)) h.update(c);
  return h.digest();
}

/** The store path a CA implies for this content; 400 when the content does not have the CA's hash. */
async function pathOfContentAddress(
  ca: ContentAddress,
  name: string,
  node: Node,
  narSha256: Uint8Array,
  references: readonly StorePath[],
  self: StorePath,
  store: ServerStore,
): Promise<StorePath> {
  const others = references
    .filter((r) => !storePathEquals(r, self))
    .map((r) => formatStorePath(r, store.storeDir));
  const hasSelf = references.some((r) => storePathEquals(r, self));
  let digest: Uint8Array;
  switch (ca.method) {
    case 'nar':
      digest = ca.hash.algo === 'sha256' ? narSha256 : await narHashWith(node, ca.hash.algo, store);
      break;
    case 'flat':
      digest = await flatHash(node, ca.hash.algo, store, 'a flat');
      break;
    case 'text':
      if (ca.hash.algo !== 'sha256') throw badRequest('a text content address must use sha256');
      digest = await flatHash(node, 'sha256', store, 'a text');
      break;
    case 'git':
      throw badRequest('git content addresses are not accepted for upload');
  }
  if (!bytesEqual(digest, ca.hash.digest)) {
    throw badRequest(
      `content address ${formatContentAddress(ca)} does not match the uploaded content (${toSRI({ algo: ca.hash.algo, digest })})`,
    );
  }
  try {
    if (ca.method === 'text') {
      if (hasSelf) throw badRequest('a text path cannot refer to itself');
      return makeTextPath(name, digest, others, store.storeDir);
    }
    return makeFixedOutputPath(
      { name, method: ca.method, hash: ca.hash, references: others, self: hasSelf },
      store.storeDir,
    );
  } catch (e) {
    if (isFetchCacheError(e)) throw badRequest(e.message);
    throw e;
  }
}

/**
 * Validate an uploaded narinfo for `urlHashPart` against the pending (or
 * stored) NAR it names and write the path info. Returns what was stored.
 * Runs under an ingest lease; 409 when a gc deleted the pending NAR's data
 * (see the header).
 */
export async function commitNarInfo(
  text: string,
  urlHashPart: string,
  store: ServerStore,
  pending: PendingUploads,
): Promise<PathInfo> {
  const ni = (() => {
    try {
      return parseNarInfo(text, { storeDir: store.storeDir });
    } catch (e) {
      if (isFetchCacheError(e)) throw badRequest(e.message);
      throw e;
    }
  })();
  const storePath = parseStorePath(ni.storePath, store.storeDir);
  if (storePathHashPart(storePath) !== urlHashPart) {
    throw badRequest(`narinfo for ${ni.storePath} uploaded as ${urlHashPart}.narinfo`);
  }
  if (ni.narHash.algo !== 'sha256') throw badRequest('NarHash must be a SHA-256');
  return store.coordination.ingest(() => commitLeased(ni, storePath, store, pending));
}

async function commitLeased(
  ni: NarInfo,
  storePath: StorePath,
  store: ServerStore,
  pending: PendingUploads,
): Promise<PathInfo> {
  const narSha256 = ni.narHash.digest;
  const p = await pending.byNarHash(narSha256);
  let node: Node;
  let narSize: number;
  if (p !== undefined) {
    // Under the lease no gc deletes anything, so what is here now stays until the path info is written.
    const missing = await missingData(store.maintenance, p.node);
    if (missing.length > 0) {
      await pending.remove(p);
      throw new HttpError(
        409,
        `the NAR with hash ${toSRI(ni.narHash)} lost data to a garbage collection before its narinfo arrived (${missing[0]}${missing.length > 1 ? `, and ${missing.length - 1} more` : ''}); upload the NAR again`,
      );
    }
    node = p.node;
    narSize = p.narSize;
    if (
      ni.fileHash !== undefined &&
      !(ni.fileHash.algo === 'sha256' && bytesEqual(ni.fileHash.digest, p.fileSha256))
    ) {
      throw badRequest(
        `FileHash ${toSRI(ni.fileHash)} is not the uploaded file's ${toSRI({ algo: 'sha256', digest: p.fileSha256 })}`,
      );
    }
    if (ni.fileSize !== undefined && ni.fileSize !== p.fileSize) {
      throw badRequest(`FileSize ${ni.fileSize} is not the uploaded file's ${p.fileSize}`);
    }
  } else {
    // Nix skips the NAR PUT when HEAD finds the file, e.g. a NAR the cache already serves.
    const holder = await store.pathInfos.byNarHash(narSha256);
    const existing = holder === undefined ? undefined : await store.pathInfos.get(holder);
    if (existing === undefined) {
      throw badRequest(`the NAR with hash ${toSRI(ni.narHash)} has not been uploaded`);
    }
    node = existing.node;
    narSize = existing.narSize;
  }
  if (ni.narSize !== narSize) throw badRequest(`NarSize ${ni.narSize} is not the uploaded NAR's ${narSize}`);

  const references = ni.references.map((r) => parseStorePathBaseName(r));
  for (const ref of references) {
    if (storePathEquals(ref, storePath)) continue;
    const info = await store.pathInfos.get(ref.digest);
    if (info === undefined || info.storePath.name !== ref.name) {
      throw badRequest(`reference '${formatStorePath(ref, store.storeDir)}' is not in this cache`);
    }
  }
  for (const sig of ni.sigs) {
    try {
      parseSignature(sig);
    } catch (e) {
      if (isFetchCacheError(e)) throw badRequest(`bad Sig line: ${e.message}`);
      throw e;
    }
  }
  let ca: ContentAddress | undefined;
  if (ni.ca !== undefined) {
    try {
      ca = parseContentAddress(ni.ca);
    } catch (e) {
      if (isFetchCacheError(e)) throw badRequest(e.message);
      throw e;
    }
    const implied = await pathOfContentAddress(
      ca,
      storePath.name,
      node,
      narSha256,
      references,
      storePath,
      store,
    );
    if (!storePathEquals(implied, storePath)) {
      throw badRequest(`CA ${ni.ca} makes ${formatStorePath(implied, store.storeDir)}, not ${ni.storePath}`);
    }
  }
  const deriver = ni.deriver === undefined ? undefined : parseStorePathBaseName(ni.deriver);
  let info: PathInfo;
  try {
    info = await store.pathInfos.put({
      storePath,
      node,
      references,
      narSha256,
      narSize,
      signatures: ni.sigs,
      ...(deriver === undefined ? {} : { deriver }),
      ...(ca === undefined ? {} : { ca }),
    });
  } catch (e) {
    if (isFetchCacheError(e, 'ERR_PATH_CONFLICT'))
      throw new HttpError(409, `${e.message}; nothing was changed`);
    throw e;
  }
  await store.narCalc.remember(node, { narSha256, narSize });
  if (p !== undefined) await pending.remove(p);
  return info;
}
