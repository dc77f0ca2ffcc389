/**
 * Temporary files of a cache root. A spool (the zip a tarball fetch must
 * read from the end) gets its own directory `<root>/tmp/<name>-<pid>-<random>`,
 * on the root's file system rather than in `/tmp`, and the directory is
 * removed when its use ends, whether it worked or not. A process killed
 * meanwhile leaves it behind: opening the root (every command, `gc`
 * included) removes the directories whose process is no longer running,
 * never a live process's (a pid that was reused keeps its leftover, the safe
 * way round). Without a root (an in-memory cache) the OS temp dir is used.
 */

import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `<root>/tmp`. */
export function tempRoot(root: string): string {
  return join(root, 'tmp');
}

/** Run `fn` with a fresh private directory (under `<root>/tmp`, else the OS temp dir), removed afterwards. */
export async function withTempDir<T>(
  root: string | undefined,
  name: string,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  let parent = tmpdir();
  if (root !== undefined) {
    parent = tempRoot(root);
    mkdirSync(parent, { recursive: true, mode: 0o700 });
  }
  const dir = await mkdtemp(join(parent, `${name}-${process.pid}-`));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Remove what processes that are no longer running left in `<root>/tmp`; returns the entries removed. */
export function removeStaleTempDirs(root: string): number {
  let entries: string[];
  try {
    entries = readdirSync(tempRoot(root));
  } catch {
    return 0;
  }
  let removed = 0;
  for (const entry of entries) {
    const pid = /-(\d+)-[^-]+$/.exec(entry)?.[1];
    if (pid !== undefined && running(Number(pid))) continue;
    rmSync(join(tempRoot(root), entry), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

function running(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
