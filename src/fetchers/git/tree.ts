/**
 * A commit's tree as the neutral entry stream `ingestEntries()` takes, read
 * straight from git objects (no checkout, no `.git`). Order: children before
 * parents, root (empty path) last. Modes: 100755 (any regular mode with the
 * owner-execute bit) → executable file, other 100xxx → file, 120000 →
 * symlink whose target is the blob, 040000 → directory, 160000 (gitlink) →
 * an empty directory, or with submodules the submodule's commit tree mounted
 * in place (recursively, each submodule resolving its own `.gitmodules`
 * against its own URL). No git filters are applied (no eol conversion, no
 * export-subst), as in Nix ≥ 2.20.
 *
 * With `exportIgnore`, paths whose `.gitattributes` give them
 * `export-ignore` are left out, the rule `git archive` follows; a directory
 * left empty by it stays (as an empty directory), as `git archive` writes it.
 */

import type { IngestEntry } from '../../castore/ingest.js';
import { FetchCacheError } from '../../errors.js';
import { type AttributeRules, isExportIgnored, parseAttributes } from './attributes.js';
import { parseGitmodules, type Submodule } from './gitmodules.js';
import type { GitObjects } from './objects.js';

/** A tree to walk: the repository holding it and, for submodules, the URL relative paths resolve against. */
export interface TreeSource {
  readonly objects: GitObjects;
  readonly tree: string;
  readonly url: string;
}

export interface TreeWalkOptions {
  readonly exportIgnore: boolean;
  /**
   * Opens the commit a gitlink names; undefined leaves gitlinks as empty
   * directories. `submodule` is the `.gitmodules` entry for the path, or
   * undefined when there is none (the gitlink then stays empty).
   */
  readonly openSubmodule?: (parent: TreeSource, submodule: Submodule, rev: string) => Promise<TreeSource>;
}

const ATTRIBUTES = '.gitattributes';
const GITMODULES = '.gitmodules';

function bytes(latin1: string): Uint8Array {
  return new Uint8Array(Buffer.from(latin1, 'latin1'));
}

/** The entries of `source`'s tree, children before parents, the root last. */
export async function* walkTree(source: TreeSource, options: TreeWalkOptions): AsyncGenerator<IngestEntry> {
  yield* walkSource(source, '', options);
}

async function* walkSource(
  source: TreeSource,
  prefix: string,
  options: TreeWalkOptions,
): AsyncGenerator<IngestEntry> {
  let submodules: Map<string, Submodule> | undefined;
  if (options.openSubmodule) {
    const root = await source.objects.tree(source.tree);
    const file = root.find(
      (e) => e.mode.startsWith('100') && Buffer.from(e.name).toString('latin1') === GITMODULES,
    );
    submodules = file
      ? parseGitmodules(Buffer.from(await source.objects.blob(file.oid)).toString('latin1'))
      : new Map();
  }
  yield* walkDir(source, source.tree, '', prefix, [], submodules, options);
}

async function* walkDir(
  source: TreeSource,
  treeOid: string,
  rel: string,
  prefix: string,
  attrs: readonly AttributeRules[],
  submodules: Map<string, Submodule> | undefined,
  options: TreeWalkOptions,
): AsyncGenerator<IngestEntry> {
  const entries = await source.objects.tree(treeOid);
  let stack = attrs;
  if (options.exportIgnore) {
    const file = entries.find(
      (e) => e.mode.startsWith('100') && Buffer.from(e.name).toString('latin1') === ATTRIBUTES,
    );
    if (file) stack = [...attrs, parseAttributes(rel, await source.objects.blob(file.oid))];
  }
  for (const entry of entries) {
    const name = Buffer.from(entry.name).toString('latin1');
    const childRel = rel === '' ? name : `${rel}/${name}`;
    const out = prefix === '' ? childRel : `${prefix}/${childRel}`;
    const isDir = entry.mode === '40000' || entry.mode === '040000' || entry.mode === '160000';
    if (options.exportIgnore && isExportIgnored(stack, childRel, isDir)) continue;
    if (entry.mode === '40000' || entry.mode === '040000') {
      yield* walkDir(source, entry.oid, childRel, prefix, stack, submodules, options);
    } else if (entry.mode === '160000') {
      const sub = submodules?.get(childRel);
      if (sub && options.openSubmodule) {
        const inner = await options.openSubmodule(source, sub, entry.oid);
        yield* walkSource(inner, out, options);
      } else yield { type: 'directory', path: bytes(out) };
    } else if (entry.mode === '120000') {
      yield { type: 'symlink', path: bytes(out), target: await source.objects.blob(entry.oid) };
    } else if (entry.mode.startsWith('100')) {
      const executable = (Number.parseInt(entry.mode, 8) & 0o100) !== 0;
      yield { type: 'file', path: bytes(out), executable, contents: await source.objects.blob(entry.oid) };
    } else {
      throw new FetchCacheError('ERR_GIT', `unsupported git tree entry mode ${entry.mode} at '${out}'`, {
        path: out,
        actual: entry.mode,
      });
    }
  }
  yield { type: 'directory', path: bytes(rel === '' ? prefix : prefix === '' ? rel : `${prefix}/${rel}`) };
}
