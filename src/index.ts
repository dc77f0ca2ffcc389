/**
 * The public API of fetch-cache: an explicit list, nothing re-exported by
 * wildcard, sorted by module path. Internal modules may change; these names
 * are the contract, each with a doc comment (test/api/doc-comments.test.ts).
 * An embedding service can do what the CLI does: fetch (`Fetcher`), pins
 * (`resolvePin`, `synchronize`, `checkLock`, `importLock`), `gc`, `verify`,
 * `stats` and the binary cache server (`createServer`).
 */

export type { Capabilities } from './blob/capabilities.js';
export type { BlobService } from './blob/service.js';
export { type Cache, type CacheOptions, openCache, resolveRoot } from './cache.js';
export { type B3Digest, b3ToHex, parseB3Digest } from './castore/digest.js';
export { Directory } from './castore/directory.js';
export { type IngestEntry, ingestEntries } from './castore/ingest.js';
export type { Node } from './castore/nodes.js';
export type { ChangeStamp, Coordination, PendingUploads } from './coordination/service.js';
export type { DirectoryService } from './directory/service.js';
export { type ErrorCode, FetchCacheError, isFetchCacheError } from './errors.js';
export {
  DEFAULT_TTL_SECONDS,
  Fetcher,
  type FetcherOptions,
  fetchSpec,
  ingestAndPersist,
} from './fetchers/base.js';
export type { FetchRecords } from './fetchers/fetch-index.js';
export { HttpClient, type HttpClientOptions } from './fetchers/http.js';
export type {
  FetchMetadata,
  FetchResult,
  FetchSpec,
  GitSpec,
  NarSpec,
  PathSpec,
  ProgressEvent,
  TarballSpec,
  UrlSpec,
} from './fetchers/types.js';
export { addPath } from './fs/add.js';
export { exportNode } from './fs/export.js';
export { hashFile, hashPath } from './fs/hash.js';
export { copyToNixStore, type NixStoreOptions, type NixStoreResult } from './fs/nix-store.js';
export { type CheckReport, checkLock, type PinCheck } from './lock/check.js';
export { type ImportedInput, type ImportReport, importLock } from './lock/import.js';
export {
  emptyLockfile,
  formatLockfile,
  type LockedPin,
  type Lockfile,
  parseLockfile,
  readLockfile,
  writeLockfile,
} from './lock/lockfile.js';
export { type Manifest, type Pin, parseManifest, pinDigest } from './lock/manifest.js';
export { type ResolveOptions, resolvePin } from './lock/resolve.js';
export {
  planSync,
  type SyncOptions,
  type SyncReport,
  type SyncResult,
  settledPlan,
  synchronize,
} from './lock/sync.js';
export type { Kind as MaintenanceKind, Maintenance } from './maintenance/service.js';
export { ingestNar } from './nar-render/ingest-nar.js';
export type { NarCalculator, NarSum, NarSums } from './nar-render/nar-calc.js';
export { narSizeOf, renderNar } from './nar-render/render.js';
export {
  type ContentAddress,
  formatContentAddress,
  parseContentAddress,
  storePathForContentAddress,
} from './nix/content-address.js';
export {
  compressHash,
  formatHash,
  type Hash,
  type HashFormat,
  hashOf,
  parseAnyPrefixedHash,
  parseHash,
  toNix32Prefixed,
  toSRI,
} from './nix/hash.js';
export type { HashAlgo } from './nix/hashing.js';
export { encodeNar, NarEncoder, type NarTree } from './nix/nar/encoder.js';
export { narListing } from './nix/nar/listing.js';
export { type NarEvent, NarParser } from './nix/nar/parser.js';
export { formatNarInfo, type NarInfo, parseNarInfo } from './nix/narinfo.js';
export { decodeNix32, encodeNix32 } from './nix/nixbase32.js';
export {
  fingerprintPath,
  formatPublicKey,
  formatSecretKey,
  generateKeyPair,
  type PublicKey,
  parsePublicKey,
  parseSecretKey,
  publicKeyOf,
  type SecretKey,
  signFingerprint,
  verifySignature,
} from './nix/signing.js';
export {
  DEFAULT_STORE_DIR,
  formatStorePath,
  makeFixedOutputPath,
  makeStorePath,
  makeTextPath,
  parseStorePath,
  type StorePath,
  storePathBaseName,
  validateStorePathName,
} from './nix/store-path.js';
export { type GcOptions, type GcReport, gc } from './ops/gc.js';
export { type StoreStats, storeStats as stats } from './ops/stats.js';
export { type DamagedPath, type VerifyOptions, type VerifyReport, verify } from './ops/verify.js';
export type { PathInfo } from './pathinfo/path-info.js';
export type { PathInfoService } from './pathinfo/service.js';
export {
  type CacheServer,
  createServer,
  type ServerOptions,
  type ServerTimeouts,
} from './server/cache-server.js';
export { jsonLogger, type LogFields, type Logger, type LogLevel } from './server/log.js';
