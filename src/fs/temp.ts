/**
 * Temporary files of a cache root. A spool (the zip a tarball fetch must
 * read from the end) gets its own directory `<root>/tmp/<name>-<pid>-<random>`,
 * on the root's file system rather than in `/tmp`, and the directory is
 * removed when its use ends, whether it worked or not. A process killed
 * meanwhile leaves it behind: opening the root (every command, `gc`
 * included) removes the directories whose process is no longer running,
 * never a live process's (a pid that was reused keeps its leftover, the safe
 * way round). Without a root (an in-memory cache) the OS temp dir is used, and
 * the leftovers there of our own names are removed the same way.
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
  return removeStale(tempRoot(root), () => true);
}

/**
 * Remove the `<name>-<pid>-<random>` entries of the OS temp dir whose process is no longer running
 * (one killed before its exit handler ran); nothing else there is touched, not even a `<name>-…` entry
 * without a pid, whose process cannot be told.
 */
export function removeStaleOsTempDirs(name: string): number {
  return removeStale(tmpdir(), (entry) => entry.startsWith(`${name}-`) && PID_NAMED.test(entry));
}

/** `<name>-<pid>-<random>`: the pid. */
const PID_NAMED = /-(\d+)-[^-]+$/;

/** Remove the entries of `dir` that `ours` claims, unless they name a running process. */
function removeStale(dir: string, ours: (entry: string) => boolean): number {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const entry of entries) {
    if (!ours(entry)) continue;
    const pid = PID_NAMED.exec(entry)?.[1];
    if (pid !== undefined && running(Number(pid))) continue;
    rmSync(join(dir, entry), { recursive: true, force: true });
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
