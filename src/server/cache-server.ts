/**
 * The binary cache server as one object, for the library and for `fetch-cache serve` alike:
 * `createServer(cache, options)` builds the services of an open cache (services.ts) and returns a
 * `CacheServer` that listens (server.ts: timeouts, graceful stop) and stops. Listening logs one
 * `listening` line and stopping one `stopped` line through the given logger (none by default); a port
 * that cannot be bound is ERR_IO. The cache stays open when the server stops: whoever opened it closes
 * it (after `stop`, which waits for running requests). `serveUntilSignal` is what the CLI adds: run
 * until SIGTERM or SIGINT.
 */

import type { Cache } from '../cache.js';
import { FetchCacheError } from '../errors.js';
import type { SecretKey } from '../nix/signing.js';
import type { Logger } from './log.js';
import { DEFAULT_BIND, parseBind, type RunningServer, type ServerTimeouts, startServer } from './server.js';
import { createServices } from './services.js';

export type { ServerTimeouts } from './server.js';

/** How `createServer` serves a cache; every field is optional, with the defaults of `fetch-cache serve`. */
export interface ServerOptions {
  /** `Priority` in `nix-cache-info`; lower is preferred (default 30, ahead of cache.nixos.org's 40). */
  readonly priority?: number | undefined;
  /** Every narinfo is signed with each of these keys (`parseSecretKey` of a `keygen` secret key file). */
  readonly signingKeys?: readonly SecretKey[] | undefined;
  /** Enables uploads (`nix copy --to`) for clients that send this token; none: uploads are refused. */
  readonly uploadToken?: string | undefined;
  /** Largest uploaded NAR, as sent and decompressed (default 4 GiB); past it 413. */
  readonly maxUploadBytes?: number | undefined;
  /** NARs rendered at once (default 16). */
  readonly maxRenders?: number | undefined;
  /** `zstd` (default): `Content-Encoding: zstd` for clients that accept it, when the `zstd` command is installed. */
  readonly compression?: 'zstd' | 'none' | undefined;
  /** Where the JSON log lines go (`jsonLogger` of the CLI); default: nowhere. */
  readonly log?: Logger | undefined;
  /** Request, header and idle timeouts (server.ts has the defaults). */
  readonly timeouts?: ServerTimeouts | undefined;
}

/** A binary cache server over an open cache: `listen` once, then `stop`. */
export interface CacheServer {
  /**
   * Starts listening on `bind`: `HOST:PORT` (port 0: any free port), `[v6]:PORT`, `:PORT` (all
   * interfaces), or a unix socket `unix:/path` (default `127.0.0.1:5000`). Resolves with the URL once
   * it accepts connections (`http://127.0.0.1:41234`, `unix:/path`). A port that cannot be bound is
   * ERR_IO; a malformed `bind` a TypeError; a second call a TypeError.
   */
  listen(bind?: string): Promise<string>;
  /** The URL it listens on, `undefined` before `listen`. */
  readonly url: string | undefined;
  /**
   * Stops gracefully: no new connections, idle ones closed, requests in flight given `graceMs`
   * (default 10 s) to finish. Idempotent; resolves once stopped. The cache stays open.
   */
  stop(graceMs?: number): Promise<void>;
}

/** A binary cache server over `cache` (not yet listening: call `listen`). */
export function createServer(cache: Cache, options: ServerOptions = {}): CacheServer {
  if (options.compression !== undefined && options.compression !== 'zstd' && options.compression !== 'none')
    throw new TypeError(`compression must be 'zstd' or 'none', not '${String(options.compression)}'`);
  const services = createServices(cache, {
    priority: options.priority,
    signingKeys: options.signingKeys,
    uploadToken: options.uploadToken,
    maxUploadBytes: options.maxUploadBytes,
    maxRenders: options.maxRenders,
    zstd: options.compression === 'none' ? false : undefined,
    log: options.log,
  });
  let running: RunningServer | undefined;
  let started = false;
  let stopping: Promise<void> | undefined;
  return {
    get url() {
      return running?.url;
    },
    async listen(bind = DEFAULT_BIND) {
      if (started) throw new TypeError('this server was already started');
      const where = parseBind(bind);
      started = true;
      try {
        running = await startServer(services, where, options.timeouts);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
          throw new FetchCacheError('ERR_IO', `cannot listen on ${bind}: ${code}`, { cause: e });
        }
        throw e;
      }
      services.log.log('info', 'listening', {
        url: running.url,
        priority: services.config.priority,
        signingKeys: services.config.signingKeys.map((k) => k.name).join(' '),
        uploads: services.auth.enabled,
        zstd: services.zstd?.command ?? 'off',
      });
      return running.url;
    },
    stop(graceMs) {
      if (running === undefined) return Promise.resolve();
      const r = running;
      stopping ??= r.stop(graceMs).then(() => services.log.log('info', 'stopped'));
      return stopping;
    },
  };
}

/** Listen on `bind`, run until SIGTERM or SIGINT (logged as `stopping`), then stop gracefully. */
export async function serveUntilSignal(server: CacheServer, bind: string, log: Logger): Promise<void> {
  await server.listen(bind);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
  log.log('info', 'stopping', { signal });
  await server.stop();
}
