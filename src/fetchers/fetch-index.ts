/**
 * The fetch index: what an unpinned fetch last produced, so a repeat within
 * the TTL needs no request and a later one can revalidate with
 * `If-None-Match` / `If-Modified-Since`. One entry per fetch input (type,
 * URL, name and the options that change the result), in the store's fetch
 * records (`FetchRecords`, a service of the store: Cache.fetchIndex), keyed
 * by JSON text. Values are JSON (version 1):
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

import type { FetchMetadata, FetchSpec } from './types.js';

/**
 * The store's fetch records: JSON text by JSON text key (this file's entries, and the ref listings of
 * lock/remote-refs.ts). A record is only a hint, so a write may be lost; maintenance lists them as
 * `fetchIndex`.
 */
export interface FetchRecords {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
}

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

/** The fetch index's entries in the store's fetch records. */
export class FetchIndex {
  constructor(private readonly records: FetchRecords) {}

  async get(key: string): Promise<FetchIndexEntry | undefined> {
    const raw = await this.records.get(key);
    if (raw === undefined) return undefined;
    try {
      const v = JSON.parse(raw) as FetchIndexEntry & { v?: number };
      return v.v === 1 && typeof v.storePath === 'string' && typeof v.fetchedAt === 'number' ? v : undefined;
    } catch {
      return undefined;
    }
  }

  async put(key: string, entry: FetchIndexEntry): Promise<void> {
    await this.records.put(key, JSON.stringify({ v: 1, ...entry }));
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
export async function putPinRecord(records: FetchRecords, record: PinRecord): Promise<void> {
  await records.put(pinRecordKey(record.lockfile, record.pin), JSON.stringify({ v: 1, ...record }));
}
