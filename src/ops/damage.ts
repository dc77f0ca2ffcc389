/**
 * Pinpoints damage under a castore root node: walks every directory, chunk
 * list and chunk it reaches, re-hashing each against its key, and names
 * what is missing or wrong. verify.ts runs this only for a path whose NAR
 * render failed or came out wrong, to say exactly what broke and to let
 * `--repair` delete the damaged values (a re-fetch rewrites them; the blob
 * service would otherwise keep a damaged chunk, since it skips chunks it
 * already has).
 */

import { decodeChunkList } from '../blob/chunk-list.js';
import { bytesEqual } from '../castore/bytes.js';
import { b3ToHex, EMPTY_B3 } from '../castore/digest.js';
import { Directory } from '../castore/directory.js';
import type { Node } from '../castore/nodes.js';
import { keyOf } from '../maintenance/reach.js';
import type { Maintenance } from '../maintenance/service.js';
import { blake3 } from '../nix/hashing.js';

export interface Damage {
  readonly problems: string[];
  /** Values present but wrong, by kind: delete them before re-fetching. */
  readonly damaged: { dirs: Uint8Array[]; lists: Uint8Array[]; chunks: Uint8Array[] };
}

export async function locateDamage(store: Maintenance, node: Node): Promise<Damage> {
  const d: Damage = { problems: [], damaged: { dirs: [], lists: [], chunks: [] } };
  const seen = new Set<string>();
  const checked = new Set<string>();
  const files: { digest: Uint8Array; size: number }[] = [];
  const queue: Uint8Array[] = [];
  if (node.type === 'directory') queue.push(node.digest);
  else if (node.type === 'file') files.push(node);
  while (queue.length > 0) {
    const digest = queue.shift()!;
    const [value] = await store.getMany('directories', [digest]);
    const hex = b3ToHex(digest);
    if (value === undefined) {
      d.problems.push(`directory ${hex} is missing`);
      continue;
    }
    if (!bytesEqual(blake3(value), digest)) {
      d.problems.push(`directory ${hex} does not hash to its digest`);
      d.damaged.dirs.push(digest);
      continue;
    }
    let dir: Directory;
    try {
      dir = Directory.decode(new Uint8Array(value), { canonical: true });
    } catch {
      d.problems.push(`directory ${hex} is not a valid directory`);
      d.damaged.dirs.push(digest);
      continue;
    }
    for (const { node: child } of dir) {
      if (child.type === 'directory') {
        if (!seen.has(keyOf(child.digest))) {
          seen.add(keyOf(child.digest));
          queue.push(child.digest);
        }
      } else if (child.type === 'file') files.push(child);
    }
  }
  for (const f of files) {
    const k = keyOf(f.digest);
    if (checked.has(k) || bytesEqual(f.digest, EMPTY_B3)) continue;
    checked.add(k);
    await checkBlob(store, f.digest, f.size, d);
  }
  return d;
}

async function checkBlob(store: Maintenance, digest: Uint8Array, size: number, d: Damage): Promise<void> {
  const hex = b3ToHex(digest);
  const [list] = await store.getMany('chunkLists', [digest]);
  let chunks: { digest: Uint8Array; size: number }[];
  if (list !== undefined) {
    try {
      chunks = decodeChunkList(list, hex).chunks;
    } catch {
      d.problems.push(`chunk list of blob ${hex} is damaged`);
      d.damaged.lists.push(digest);
      return;
    }
  } else chunks = [{ digest, size }];
  let total = 0;
  for (const c of chunks) {
    total += c.size;
    const bytes = await store.chunkBytes(c.digest);
    const chex = b3ToHex(c.digest);
    if (bytes === undefined) {
      d.problems.push(
        list === undefined ? `blob ${hex} is missing` : `chunk ${chex} of blob ${hex} is missing`,
      );
    } else if (bytes.length !== c.size || !bytesEqual(blake3(bytes), c.digest)) {
      d.problems.push(
        list === undefined ? `blob ${hex} is damaged` : `chunk ${chex} of blob ${hex} is damaged`,
      );
      d.damaged.chunks.push(c.digest);
    }
  }
  if (total !== size) d.problems.push(`blob ${hex} has ${total} bytes, its file node says ${size}`);
}
