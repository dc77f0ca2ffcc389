/**
 * Where a stored path came from, for `verify --repair`: the fetch index
 * (fetchers/fetch-index.ts) keeps one entry per fetch input, whose key names
 * the source (type, URL or git remote, name, options) and whose value names
 * the store path it produced. Reading every entry backwards gives, per
 * store path, the specs that can fetch it again; the expected hash is the
 * path's own content address, so a source that now serves something else
 * cannot overwrite it.
 */

import type { Cache } from '../cache.js';
import type { FetchIndexEntry } from '../fetchers/fetch-index.js';
import type { FetchSpec } from '../fetchers/types.js';
import { toSRI } from '../nix/hash.js';
import type { PathInfo } from '../pathinfo/path-info.js';

/** Specs (without hash) by store path base name `<hash>-<name>`. */
export async function recordedSources(cache: Pick<Cache, 'maintenance'>): Promise<Map<string, FetchSpec[]>> {
  const out = new Map<string, FetchSpec[]>();
  for await (const [key, value] of cache.maintenance.entries('fetchIndex')) {
    let spec: FetchSpec | undefined;
    let entry: FetchIndexEntry;
    try {
      entry = JSON.parse(Buffer.from(value).toString('utf8')) as FetchIndexEntry;
      spec = specFromKey(JSON.parse(Buffer.from(key).toString('utf8')) as unknown[], entry);
    } catch {
      continue;
    }
    if (spec === undefined || typeof entry.storePath !== 'string') continue;
    const list = out.get(entry.storePath) ?? [];
    list.push(spec);
    out.set(entry.storePath, list);
  }
  return out;
}

/** Inverse of `fetchIndexKey`: the spec a key was made from (git pinned to the rev it produced). */
export function specFromKey(key: unknown[], entry: FetchIndexEntry): FetchSpec | undefined {
  const [type, url, name] = key;
  if (typeof url !== 'string' || typeof name !== 'string') return undefined;
  switch (type) {
    case 'url':
      return { type: 'url', url, name, executable: key[3] === true };
    case 'tarball':
    case 'nar':
      return { type, url, name };
    case 'git': {
      const [, , , ref, rev, submodules, shallow, exportIgnore] = key;
      const pinned = entry.metadata?.rev ?? (typeof rev === 'string' ? rev : undefined);
      return {
        type: 'git',
        url,
        name,
        ...(typeof ref === 'string' ? { ref } : {}),
        ...(pinned === undefined ? {} : { rev: pinned }),
        submodules: submodules === true,
        shallow: shallow === true,
        ...(typeof exportIgnore === 'boolean' ? { exportIgnore } : {}),
      };
    }
    default:
      return undefined;
  }
}

/** The spec with the path's content address as its expected hash; undefined without a CA. */
export function pinnedTo(spec: FetchSpec, info: PathInfo): FetchSpec | undefined {
  if (info.ca === undefined || (info.ca.method !== 'flat' && info.ca.method !== 'nar')) return undefined;
  return { ...spec, hash: toSRI(info.ca.hash) };
}
