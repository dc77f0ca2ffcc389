/**
 * `revCount`: the number of commits reachable from a rev, the rev included
 * (a root commit → 1), as `git rev-list --count <rev>` gives it. Each commit
 * is read once in a walk over parents; the result never changes for a rev, so
 * it is kept in `<dir>/revcount/<rev>` (written atomically) and later asks
 * cost one file read.
 */

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FetchCacheError } from '../../errors.js';
import type { GitObjects } from './objects.js';

export async function countRevs(objects: GitObjects, rev: string): Promise<number> {
  const seen = new Set<string>([rev]);
  const queue = [rev];
  while (queue.length > 0) {
    const oid = queue.pop()!;
    const parents = await objects.parents(oid);
    if (parents === undefined) {
      throw new FetchCacheError(
        'ERR_GIT',
        `history of ${rev} is incomplete (commit ${oid} is missing; shallow?)`,
        {
          actual: oid,
        },
      );
    }
    for (const parent of parents) {
      if (!seen.has(parent)) {
        seen.add(parent);
        queue.push(parent);
      }
    }
  }
  return seen.size;
}

/** `countRevs` through the per-repository cache directory `dir`. */
export async function cachedRevCount(objects: GitObjects, rev: string, dir: string): Promise<number> {
  const file = join(dir, 'revcount', rev);
  try {
    const n = Number((await readFile(file, 'utf8')).trim());
    if (Number.isSafeInteger(n) && n > 0) return n;
  } catch {
    // not cached yet
  }
  const n = await countRevs(objects, rev);
  await mkdir(join(dir, 'revcount'), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${n}\n`);
  await rename(tmp, file);
  return n;
}
