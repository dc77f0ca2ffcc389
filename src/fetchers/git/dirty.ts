/**
 * Whether a local working tree is "dirty": its tracked files differ from its
 * HEAD commit. Nix fetches such a tree (a local repository with neither `ref`
 * nor `rev`) as it is on disk and warns `Git tree '<path>' is dirty`; we fetch
 * the committed HEAD (docs/differences-from-nix.md), so the warning matters
 * even more: the uncommitted changes are not in the result. The check is the
 * one Nix 2.8 runs, `git diff HEAD --quiet` (untracked files do not count;
 * submodules only with `submodules`), through the `git` command: reading the
 * index's stat cache is what makes it cheap on a large tree. Without `git`
 * installed, or for a bare repository, nothing is said.
 */

import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

/** True when `git diff HEAD` in the working tree `dir` finds changes; false when clean or unknown. */
export async function isDirtyWorkingTree(dir: string, submodules: boolean): Promise<boolean> {
  try {
    await stat(join(dir, '.git'));
  } catch {
    return false; // a bare repository, or not a working tree: nothing can be dirty
  }
  const args = ['-C', dir, 'diff', 'HEAD', '--quiet', ...(submodules ? [] : ['--ignore-submodules']), '--'];
  return new Promise((resolve) => {
    const child = spawn('git', args, { stdio: 'ignore' });
    child.once('error', () => resolve(false)); // no git: cannot tell
    child.once('close', (code) => resolve(code === 1));
  });
}
