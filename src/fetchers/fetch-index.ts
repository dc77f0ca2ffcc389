/**
 * The fetch index: what an unpinned fetch last produced, so a repeat within
 * the TTL needs no request and a later one can revalidate with
 * `If-None-Match` / `If-Modified-Since`. One entry per fetch input (type,
 * URL, name and the options that change the result), on the cache's `fetch`
 * sublevel. Values are JSON (version 1):
 * `{"v":1,"storePath":"<hash>-<name>","fetchedAt":<ms>,"etag"?,"lastModifiedHeader"?,"metadata":{…}}`.
 * An entry is only a hint: the path info it names is looked up again and a
 * missing one (gc) means a fresh fetch.
 *
 * The same sublevel holds which pin put a path into a lockfile (written by
 * lock/resolve.ts, shown by the server's index page):
 * `["pin", <lockfile or null>, <pin name>]` →
 * `{"v":1,"storePath":"<hash>-<name>","pin":…,"lockfile"?:…,"recordedAt":<ms>}`;
 * a newer resolution of the same pin replaces it, and gc deletes it with its
 * path, as it deletes every entry whose store path is gone.
 */

import type { KV } from '../storage/kv.js';
import type { FetchMetadata, FetchSpec } from './types.js';

export interface FetchIndexEntry {
  readonly storePath: string;
  /** Milliseconds since the epoch of the last transfer or revalidation. */
  readonly fetchedAt: number;
  readonly etag?: string | undefined;
  readonly lastModifiedHeader?: string | undefined;
  readonly metadata: FetchMetadata;
}

/** The index key of a spec with its resolved name; `undefined` for local paths (never indexed). */
export function fetchIndexKey(spec: FetchSpec, name: string): string | undefined {
  switch (spec.type) {
    case 'url':
      return JSON.stringify(['url', spec.url, name, spec.executable === true]);
    case 'tarball':
    case 'nar':
      return JSON.stringify([spec.type, spec.url, name]);
    case 'git': {
      // exportIgnore changes the tree; it is in the key only when it is not the default (keys from
      // before it was there stay valid for the default).
      const exportIgnore = spec.exportIgnore ?? spec.submodules !== true;
      return JSON.stringify([
        'git',
        spec.url,
        name,
        spec.ref ?? null,
        spec.rev ?? null,
        spec.submodules === true,
        spec.shallow === true,
        ...(exportIgnore === (spec.submodules !== true) ? [] : [exportIgnore]),
      ]);
    }
    case 'path':
      return undefined;
  }
}

export class FetchIndex {
  constructor(private readonly kv: KV) {}

  async get(key: string): Promise<FetchIndexEntry | undefined> {
    const raw = await this.kv.get(Buffer.from(key, 'utf8'));
    if (raw === undefined) return undefined;
    try {
      const v = JSON.parse(Buffer.from(raw).toString('utf8')) as FetchIndexEntry & { v?: number };
      return v.v === 1 && typeof v.storePath === 'string' && typeof v.fetchedAt === 'number' ? v : undefined;
    } catch {
      return undefined;
    }
  }

  async put(key: string, entry: FetchIndexEntry): Promise<void> {
    await this.kv.put(Buffer.from(key, 'utf8'), Buffer.from(JSON.stringify({ v: 1, ...entry }), 'utf8'));
  }
}

/** Which pin of which lockfile resolved to a store path. */
export interface PinRecord {
  /** `<hash>-<name>`. */
  readonly storePath: string;
  readonly pin: string;
  /** The lockfile (an absolute path) when the caller named it. */
  readonly lockfile?: string | undefined;
  /** Milliseconds since the epoch. */
  readonly recordedAt: number;
}

export function pinRecordKey(lockfile: string | undefined, pin: string): string {
  return JSON.stringify(['pin', lockfile ?? null, pin]);
}

/** Record that `record.pin` resolved to `record.storePath` (replacing what that pin recorded before). */
export async function putPinRecord(kv: KV, record: PinRecord): Promise<void> {
  await kv.put(
    Buffer.from(pinRecordKey(record.lockfile, record.pin), 'utf8'),
    Buffer.from(JSON.stringify({ v: 1, ...record }), 'utf8'),
  );
}
