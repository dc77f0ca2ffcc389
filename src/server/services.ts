/**
 * Everything a handler may use, injected once into the route table (docs/architecture.md;
 * one handler file per resource): the store (castore + path infos of an open cache), the
 * configuration, the narinfo source with its signing keys, the small-NAR cache, the render limiter,
 * pending uploads, upload auth, store statistics, telemetry and the logger.
 * Tests build these around an in-memory cache; the CLI around the cache root.
 */

import type { Cache } from '../cache.js';
import type { PendingUploads } from '../coordination/service.js';
import type { SecretKey } from '../nix/signing.js';
import { UploadAuth } from './auth.js';
import { type Logger, silentLogger } from './log.js';
import { NarCache, type NarCacheOptions } from './nar-cache.js';
import { NarInfoSource } from './narinfo-source.js';
import { RenderLimiter } from './render-limit.js';
import { StoreStats } from './store-stats.js';
import { Telemetry } from './telemetry.js';
import { DEFAULT_MAX_UPLOAD_BYTES } from './upload.js';
import { findZstd, ZstdEncoding, type ZstdOptions } from './zstd.js';

/**
 * The parts of an open cache the server reads and writes; `coordination` keeps gc away from uploads
 * (they ingest under it), records and holds served paths, and keeps pending uploads.
 */
export type ServerStore = Pick<
  Cache,
  | 'blobs'
  | 'directories'
  | 'pathInfos'
  | 'narCalc'
  | 'storeDir'
  | 'coordination'
  | 'maintenance'
  | 'capabilities'
>;

export interface ServerConfig {
  /** `Priority` in nix-cache-info; lower is preferred (default 30, ahead of cache.nixos.org's 40). */
  readonly priority: number;
  readonly signingKeys: readonly SecretKey[];
  /**
   * NAR renders at once (default 16: each holds a blob read-ahead window of a
   * few MiB, and one thread gains nothing from more) and waiting (default 1024) before 503.
   */
  readonly maxRenders: number;
  readonly maxQueuedRenders: number;
  /** Largest narinfo body accepted (default 1 MiB). */
  readonly maxNarInfoBytes: number;
  /** Largest uploaded NAR file, and NAR it decompresses to (default 4 GiB, upload.ts). */
  readonly maxUploadBytes: number;
}

export interface ServerServices {
  readonly store: ServerStore;
  readonly config: ServerConfig;
  readonly narInfos: NarInfoSource;
  readonly narCache: NarCache;
  readonly renders: RenderLimiter;
  /** The store's pending uploads (coordination/service.ts). */
  readonly uploads: PendingUploads;
  readonly auth: UploadAuth;
  readonly stats: StoreStats;
  readonly telemetry: Telemetry;
  readonly log: Logger;
  readonly startedAt: number;
  /** zstd Content-Encoding of NARs (zstd.ts); `undefined` when off or no encoder is installed. */
  readonly zstd: ZstdEncoding | undefined;
}

export interface ServicesOptions {
  priority?: number | undefined;
  signingKeys?: readonly SecretKey[] | undefined;
  /** The upload token; uploads are off without one. */
  uploadToken?: string | undefined;
  maxRenders?: number | undefined;
  maxQueuedRenders?: number | undefined;
  maxNarInfoBytes?: number | undefined;
  /** Largest uploaded NAR, compressed or not (default DEFAULT_MAX_UPLOAD_BYTES); past it 413. */
  maxUploadBytes?: number | undefined;
  /** Budgets of the in-memory cache of small NARs (nar-cache.ts). */
  narCache?: NarCacheOptions | undefined;
  log?: Logger | undefined;
  /** zstd Content-Encoding (default on when `zstd` is on PATH); `false` turns it off. */
  zstd?: ZstdOptions | false | undefined;
}

export const DEFAULT_PRIORITY = 30;

export function createServices(store: ServerStore, options: ServicesOptions = {}): ServerServices {
  const config: ServerConfig = {
    priority: options.priority ?? DEFAULT_PRIORITY,
    signingKeys: options.signingKeys ?? [],
    maxRenders: options.maxRenders ?? 16,
    maxQueuedRenders: options.maxQueuedRenders ?? 1024,
    maxNarInfoBytes: options.maxNarInfoBytes ?? 1024 * 1024,
    maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
  };
  if (!Number.isInteger(config.priority)) throw new TypeError('priority must be an integer');
  if (!Number.isSafeInteger(config.maxUploadBytes) || config.maxUploadBytes < 1) {
    throw new TypeError('maxUploadBytes must be a positive integer');
  }
  return {
    store,
    config,
    narInfos: new NarInfoSource(config.signingKeys, store.storeDir),
    narCache: new NarCache(options.narCache),
    renders: new RenderLimiter(config.maxRenders, config.maxQueuedRenders),
    uploads: store.coordination.uploads,
    auth: new UploadAuth(options.uploadToken),
    stats: new StoreStats(store.pathInfos),
    telemetry: new Telemetry(),
    log: options.log ?? silentLogger,
    startedAt: Date.now(),
    zstd: zstdEncoding(options.zstd),
  };
}

function zstdEncoding(options: ZstdOptions | false | undefined): ZstdEncoding | undefined {
  if (options === false) return undefined;
  const command = options?.command ?? findZstd();
  return command === undefined ? undefined : new ZstdEncoding(command, options ?? {});
}
