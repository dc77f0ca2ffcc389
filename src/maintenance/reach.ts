/**
 * What a castore root node reaches in the store, read raw and fast through
 * the maintenance service (service.ts), for gc and stats (src/ops) and for
 * writers that commit after a gc could have run (the server's uploads):
 * every directory (by digest), every chunk list, every chunk, with their
 * stored sizes. Directories are decoded but not re-hashed here (verify does
 * that); what is missing or unreadable is reported, not thrown, so one
 * damaged path cannot stop a gc. `RefCounts` adds closures up across paths,
 * so evicting a path frees exactly what no other path uses.
 */

import { decodeChunkList } from '../blob/chunk-list.js';
import { b3ToHex, EMPTY_B3 } from '../castore/digest.js';
import { Directory } from '../castore/directory.js';
import type { Node } from '../castore/nodes.js';
import type { Kind, Maintenance } from './service.js';

/** A byte key as a compact Map key. */
export function keyOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

export function keyBytes(key: string): Uint8Array {
  return new Uint8Array(Buffer.from(key, 'latin1'));
}

/** Every record of a kind, by key (keyOf). */
export async function readAll(store: Maintenance, kind: Kind): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const [key, value] of store.entries(kind)) out.set(keyOf(key), value);
  return out;
}

/** Keys (latin1, see keyOf) → stored bytes (value length; for chunks, the chunk size). */
export interface Closure {
  readonly dirs: Map<string, number>;
  readonly lists: Map<string, number>;
  readonly chunks: Map<string, number>;
  /** Directories or chunk lists that are missing or undecodable. */
  readonly problems: string[];
}

const PAGE = 256;
const EMPTY_KEY = keyOf(EMPTY_B3);

export async function closureOf(store: Maintenance, node: Node): Promise<Closure> {
  const c: Closure = { dirs: new Map(), lists: new Map(), chunks: new Map(), problems: [] };
  const files = new Map<string, { digest: Uint8Array; size: number }>();
  const queue: Uint8Array[] = [];
  const queued = new Set<string>();
  const addFile = (digest: Uint8Array, size: number) => {
    const k = keyOf(digest);
    if (k !== EMPTY_KEY) files.set(k, { digest, size });
  };
  if (node.type === 'directory') {
    queue.push(node.digest);
    queued.add(keyOf(node.digest));
  } else if (node.type === 'file') addFile(node.digest, node.size);
  while (queue.length > 0) {
    const page = queue.splice(0, PAGE);
    const values = await store.getMany('directories', page);
    page.forEach((digest, i) => {
      const value = values[i];
      if (value === undefined) {
        c.problems.push(`directory ${b3ToHex(digest)} is missing`);
        return;
      }
      c.dirs.set(keyOf(digest), value.length);
      let dir: Directory;
      try {
        dir = Directory.decode(new Uint8Array(value));
      } catch {
        c.problems.push(`directory ${b3ToHex(digest)} is not a valid directory`);
        return;
      }
      for (const { node: child } of dir) {
        if (child.type === 'directory') {
          const k = keyOf(child.digest);
          if (!queued.has(k)) {
            queued.add(k);
            queue.push(child.digest);
          }
        } else if (child.type === 'file') addFile(child.digest, child.size);
      }
    });
  }
  const all = [...files.values()];
  for (let at = 0; at < all.length; at += PAGE) {
    const page = all.slice(at, at + PAGE);
    const lists = await store.getMany(
      'chunkLists',
      page.map((f) => f.digest),
    );
    page.forEach((f, i) => {
      const list = lists[i];
      if (list === undefined) {
        c.chunks.set(keyOf(f.digest), f.size);
        return;
      }
      c.lists.set(keyOf(f.digest), list.length);
      try {
        for (const chunk of decodeChunkList(list).chunks) c.chunks.set(keyOf(chunk.digest), chunk.size);
      } catch {
        c.problems.push(`chunk list of blob ${b3ToHex(f.digest)} is damaged`);
      }
    });
  }
  return c;
}

type Reached = 'dirs' | 'lists' | 'chunks';
const REACHED: readonly Reached[] = ['dirs', 'lists', 'chunks'];

/** Reference counts over many closures, with the stored size of each key. */
export class RefCounts {
  readonly counts: Record<Reached, Map<string, number>> = {
    dirs: new Map(),
    lists: new Map(),
    chunks: new Map(),
  };
  readonly sizes: Record<Reached, Map<string, number>> = {
    dirs: new Map(),
    lists: new Map(),
    chunks: new Map(),
  };

  add(c: Closure): void {
    for (const kind of REACHED) {
      const counts = this.counts[kind];
      for (const [k, size] of c[kind]) {
        counts.set(k, (counts.get(k) ?? 0) + 1);
        this.sizes[kind].set(k, size);
      }
    }
  }

  /** Drop one closure; returns the keys nobody references any more and their total size. */
  remove(c: Closure): { freed: Record<Reached, string[]>; bytes: number } {
    const freed: Record<Reached, string[]> = { dirs: [], lists: [], chunks: [] };
    let bytes = 0;
    for (const kind of REACHED) {
      const counts = this.counts[kind];
      for (const k of c[kind].keys()) {
        const n = (counts.get(k) ?? 0) - 1;
        if (n > 0) {
          counts.set(k, n);
          continue;
        }
        counts.delete(k);
        freed[kind].push(k);
        bytes += this.sizes[kind].get(k) ?? 0;
        this.sizes[kind].delete(k);
      }
    }
    return { freed, bytes };
  }

  live(kind: Reached, key: string): boolean {
    return this.counts[kind].has(key);
  }

  /** Bytes of everything referenced: chunk bytes plus chunk lists and directories as stored. */
  storedBytes(): number {
    let total = 0;
    for (const kind of REACHED) for (const size of this.sizes[kind].values()) total += size;
    return total;
  }
}

/**
 * What of a node's tree is not stored (directories, chunk lists, chunks), by
 * presence only. For writers that hold ingested data across a gc (an upload
 * whose narinfo comes later): check this under an ingest lease right before
 * writing the path info, and refuse if anything is listed.
 */
export async function missingData(store: Maintenance, node: Node): Promise<string[]> {
  const c = await closureOf(store, node);
  const problems = [...c.problems];
  const keys = [...c.chunks.keys()];
  for (let at = 0; at < keys.length; at += PAGE) {
    const page = keys.slice(at, at + PAGE);
    const present = await store.hasMany('chunks', page.map(keyBytes));
    page.forEach((k, i) => {
      if (!present[i]) problems.push(`chunk ${Buffer.from(k, 'latin1').toString('hex')} is missing`);
    });
  }
  return problems;
}
