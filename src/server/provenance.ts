/**
 * Where each stored path came from, for the index page: read backwards from
 * the fetch index (fetchers/fetch-index.ts) — every fetch input names the
 * store path it produced, with when it was fetched (or last revalidated) and
 * what the source said (the git rev) — and the pin records beside it (which
 * pin of which lockfile resolved to the path), plus the last use gc orders
 * eviction by (the store's coordination). A path may have several sources and pins; an
 * uploaded or added path has none. One scan of the fetch index and the use
 * records, reused for `maxAgeMs` (default 10 s, like the store snapshot).
 */

import type { Cache } from '../cache.js';
import type { FetchIndexEntry } from '../fetchers/fetch-index.js';

/** What provenance is read from: the fetch records (through maintenance) and the last uses. */
export type ProvenanceStore = Pick<Cache, 'maintenance' | 'coordination'>;

export interface PathSource {
  /** The fetch type: url, tarball, nar or git. */
  readonly type: string;
  readonly url: string;
  readonly ref?: string | undefined;
  readonly rev?: string | undefined;
  /** Milliseconds since the epoch of the last transfer or revalidation. */
  readonly fetchedAt: number;
}

export interface PathPin {
  readonly pin: string;
  readonly lockfile?: string | undefined;
  readonly recordedAt: number;
}

export interface Provenance {
  readonly sources: PathSource[];
  readonly pins: PathPin[];
  /** Milliseconds since the epoch; undefined when no use was recorded. */
  lastUsed?: number | undefined;
}

/** Provenance by store path base name `<hash>-<name>`, and last uses by hex store path digest. */
export interface ProvenanceMap {
  readonly byPath: ReadonlyMap<string, Provenance>;
  readonly lastUsed: ReadonlyMap<string, number>;
}

type Obj = Record<string, unknown>;

function parse(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export async function readProvenance(store: ProvenanceStore): Promise<ProvenanceMap> {
  const byPath = new Map<string, Provenance>();
  const of = (storePath: string) => {
    let p = byPath.get(storePath);
    if (p === undefined) {
      p = { sources: [], pins: [] };
      byPath.set(storePath, p);
    }
    return p;
  };
  for await (const [rawKey, rawValue] of store.maintenance.entries('fetchIndex')) {
    const key = parse(rawKey);
    const value = parse(rawValue) as Obj | undefined;
    if (!Array.isArray(key) || typeof value !== 'object' || value === null) continue;
    if (typeof value.storePath !== 'string') continue;
    const [type, url] = key as unknown[];
    if (type === 'pin' && typeof value.pin === 'string' && typeof value.recordedAt === 'number') {
      of(value.storePath).pins.push({
        pin: value.pin,
        ...(typeof value.lockfile === 'string' ? { lockfile: value.lockfile } : {}),
        recordedAt: value.recordedAt,
      });
    } else if (typeof type === 'string' && typeof url === 'string' && typeof value.fetchedAt === 'number') {
      const m = (value as unknown as FetchIndexEntry).metadata ?? {};
      of(value.storePath).sources.push({
        type,
        url,
        ...(typeof m.ref === 'string' ? { ref: m.ref } : {}),
        ...(typeof m.rev === 'string' ? { rev: m.rev } : {}),
        fetchedAt: value.fetchedAt,
      });
    }
  }
  for (const p of byPath.values()) {
    p.sources.sort((a, b) => b.fetchedAt - a.fetchedAt);
    p.pins.sort((a, b) => (a.pin < b.pin ? -1 : a.pin > b.pin ? 1 : 0));
  }
  return { byPath, lastUsed: await store.coordination.lastUses() };
}

/** `readProvenance` reused for `maxAgeMs`; concurrent callers share one scan. */
export class ProvenanceCache {
  private current: { at: number; value: ProvenanceMap } | undefined;
  private scanning: Promise<ProvenanceMap> | undefined;

  constructor(
    private readonly store: ProvenanceStore,
    private readonly maxAgeMs = 10_000,
  ) {}

  async get(): Promise<ProvenanceMap> {
    const c = this.current;
    if (c !== undefined && Date.now() - c.at < this.maxAgeMs) return c.value;
    this.scanning ??= readProvenance(this.store)
      .then((value) => {
        this.current = { at: Date.now(), value };
        return value;
      })
      .finally(() => {
        this.scanning = undefined;
      });
    return this.scanning;
  }
}

const caches = new WeakMap<object, ProvenanceCache>();

/** The provenance cache of a store (one per store's maintenance, made on first use). */
export function provenanceOf(store: ProvenanceStore): ProvenanceCache {
  let c = caches.get(store.maintenance);
  if (c === undefined) {
    c = new ProvenanceCache(store);
    caches.set(store.maintenance, c);
  }
  return c;
}
