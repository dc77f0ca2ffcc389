/**
 * The store dir belongs to the data: a root's path infos are only valid under
 * the store dir their paths were made for (a fetched path's hash covers it),
 * so `layout.json` records it when the root is created and every open checks
 * it (cache.ts). A different one is ERR_STORE_DIR naming both; a caller that
 * names none gets the recorded one.
 *
 * A root made before the store dir was recorded adopts the one its path
 * infos show, not just the first one asked for: the first path info whose
 * content address fixes its path (no references) is recomputed under the
 * store dir asked for, then under `/nix/store`, and the one that gives its
 * path back is recorded. Only a root with no such path info (empty, or only
 * uploads without a CA) takes the store dir it is first opened with: taking
 * it blindly from the first open would record exactly the mismatch this file
 * exists to refuse.
 */

import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FetchCacheError } from './errors.js';
import { storePathForContentAddress } from './nix/content-address.js';
import { DEFAULT_STORE_DIR } from './nix/store-path.js';
import type { PathInfoService } from './pathinfo/service.js';

export function storeDirMismatch(root: string, recorded: string, asked: string): FetchCacheError {
  return new FetchCacheError(
    'ERR_STORE_DIR',
    `cache root '${root}' holds paths of store dir '${recorded}', not '${asked}' (use another root for another store dir)`,
    { path: root, expected: recorded, actual: asked },
  );
}

/** The store dir the path infos of an unrecorded root were made for (see the header). */
export async function adoptStoreDir(
  root: string,
  pathInfos: PathInfoService,
  asked: string | undefined,
): Promise<string> {
  const candidates = [...new Set([asked ?? DEFAULT_STORE_DIR, DEFAULT_STORE_DIR])];
  for await (const info of pathInfos.list()) {
    if (info.ca === undefined || info.references.length > 0) continue;
    const made = (dir: string): boolean => {
      try {
        const sp = storePathForContentAddress(info.storePath.name, info.ca!, [], dir);
        return Buffer.from(sp.digest).equals(Buffer.from(info.storePath.digest));
      } catch {
        return false;
      }
    };
    const found = candidates.find(made);
    if (found === undefined) {
      throw new FetchCacheError(
        'ERR_STORE_DIR',
        `cache root '${root}' holds paths of a store dir other than ${candidates.map((c) => `'${c}'`).join(' or ')}: open it with its --store-dir`,
        { path: root, actual: asked ?? DEFAULT_STORE_DIR },
      );
    }
    return found;
  }
  return asked ?? DEFAULT_STORE_DIR;
}

/** Rewrite `layout.json` with `storeDir` added (atomically: a temp file renamed over it). */
export function recordStoreDir(root: string, layout: Record<string, unknown>, storeDir: string): void {
  const file = join(root, 'layout.json');
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ ...layout, storeDir })}\n`);
  renameSync(tmp, file);
}
