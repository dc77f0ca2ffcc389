/**
 * Hand a fetched path to the local Nix store, so that the store path
 * fetch-cache printed is valid there too (`fetch … --to-nix-store`), without
 * fetching anything again.
 *
 * How: the tree is exported from the cache into a temporary directory under
 * the cache root, named as the store path, and added with
 * `nix-store --add-fixed [--recursive] <algo> <dir>/<name>`. That makes Nix
 * hash it itself and register it as the fixed-output path of its content
 * address — the same computation that made our path, so the path must come
 * out equal (checked; another store dir would not). Chosen over importing
 * the NAR we render (`nix-store --import`, `nix copy`): an import carries no
 * content address, so Nix would hold the path as an unsigned input-addressed
 * one, and through the daemon only trusted users may import unsigned paths;
 * `--add-fixed` works for every user, with Nix 2.8 and every later version,
 * and records `ca`. A path Nix already has (`nix-store --check-validity`)
 * is left alone.
 *
 * Which store: Nix's own setting (the local store or the daemon), or
 * `store` (`--store` of nix-store, e.g. a chroot store for tests). No Nix on
 * PATH, a failing `nix-store` or a different path is ERR_NIX_STORE.
 */

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { FetchCacheError } from '../errors.js';
import type { RenderServices } from '../nar-render/render.js';
import { formatStorePath } from '../nix/store-path.js';
import type { PathInfo } from '../pathinfo/path-info.js';
import { exportNode } from './export.js';
import { withTempDir } from './temp.js';

/** How `copyToNixStore` calls Nix: the `nix-store` command, its store and environment. */
export interface NixStoreOptions {
  /** The `nix-store` command (default: `nix-store` on PATH). */
  readonly command?: string | undefined;
  /** Nix's `--store` (default: Nix's own setting). */
  readonly store?: string | undefined;
  /** The environment of `nix-store` (default: this process's). */
  readonly env?: NodeJS.ProcessEnv | undefined;
}

/** What `copyToNixStore` did: the path, now valid in the Nix store, and whether Nix had it already. */
export interface NixStoreResult {
  /** The store path, now valid in the Nix store. */
  readonly path: string;
  /** False when Nix had it already. */
  readonly added: boolean;
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: readonly string[], options: NixStoreOptions): Promise<Run> {
  const command = options.command ?? 'nix-store';
  const all = [...(options.store === undefined ? [] : ['--store', options.store]), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(command, all, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.once('error', (e: NodeJS.ErrnoException) => {
      reject(
        e.code === 'ENOENT'
          ? new FetchCacheError(
              'ERR_NIX_STORE',
              `Nix is not installed: '${command}' is not on PATH (it is needed to add paths to the Nix store)`,
              { path: command, cause: e },
            )
          : new FetchCacheError('ERR_NIX_STORE', `cannot run '${command}': ${e.message}`, { cause: e }),
      );
    });
    child.once('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
  });
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1]?.trim() ?? '';
}

/**
 * Make the path of `info` valid in the local Nix store (see the header). `services` reads its tree;
 * `root` is the cache root whose `tmp/` holds the exported copy (the OS temp dir when undefined).
 */
export async function copyToNixStore(
  info: PathInfo,
  cache: RenderServices & { readonly root: string | undefined; readonly storeDir: string },
  options: NixStoreOptions = {},
): Promise<NixStoreResult> {
  const path = formatStorePath(info.storePath, cache.storeDir);
  const ca = info.ca;
  if (ca === undefined || (ca.method !== 'flat' && ca.method !== 'nar')) {
    throw new FetchCacheError(
      'ERR_NIX_STORE',
      `${path} has no fixed-output content address, so Nix cannot add it by its content`,
      { path },
    );
  }
  if ((await run(['--check-validity', path], options)).code === 0) return { path, added: false };
  const name = info.storePath.name;
  const made = await withTempDir(cache.root, 'nix-store', async (dir) => {
    const copy = join(dir, name);
    await exportNode(info.node, copy, cache);
    const args = ['--add-fixed', ...(ca.method === 'nar' ? ['--recursive'] : []), ca.hash.algo, copy];
    const r = await run(args, options);
    if (r.code !== 0) {
      throw new FetchCacheError(
        'ERR_NIX_STORE',
        `nix-store ${args.slice(0, -1).join(' ')} failed for ${path}: ${lastLine(r.stderr) || `exit ${r.code}`}`,
        { path },
      );
    }
    return lastLine(r.stdout);
  });
  if (made !== path) {
    throw new FetchCacheError(
      'ERR_NIX_STORE',
      `Nix added the content of ${path} as ${made}: its store dir is not ${cache.storeDir}`,
      { path, expected: path, actual: made },
    );
  }
  return { path, added: true };
}
