/**
 * The in-memory tree an archive is unpacked into before anything reaches the
 * directory service. Archive members arrive in any order, may repeat and may
 * omit their parent directories, so members are collected here (file contents
 * are already blobs; only digests, sizes and names are held), then the root is
 * chosen and the tree is emitted children-before-parents for `ingestEntries()`.
 *
 * Duplicate paths follow modern Nix (≥ 2.21, `GitFileSystemObjectSink`, whose
 * behaviour snix's `IngestionEntryGraph` shares):
 * - a file or symlink replaces whatever was at its path, even a directory
 *   with children (the children are dropped);
 * - a directory over a directory merges (it is a no-op);
 * - a directory over a file or symlink is an error (Nix: "parent of '…' is not
 *   a directory"), and so is any member whose path goes *through* a file or a
 *   symlink: symlinks are kept as they are and never followed.
 * Parent directories a member implies are created.
 *
 * Root selection, modern Nix (`dereferenceSingletonDirectory`): if the archive
 * root holds exactly one entry and it is a directory, that directory is the
 * root; otherwise the archive root is (several top-level entries, or a single
 * file, are fine). Nix ≤ 2.20 instead required exactly one top-level entry of
 * any type and made it the root even if it was a file, and took
 * `lastModified` from that entry alone; modern Nix takes the newest mtime of
 * all members, as `lastModified` does here.
 */

import { displayBytes } from '../../castore/bytes.js';
import type { B3Digest } from '../../castore/digest.js';
import type { IngestEntry } from '../../castore/ingest.js';
import { targetProblem } from '../../castore/nodes.js';
import { badArchive } from './path.js';
import type { Spooled } from './tree-nar.js';

export interface StoredBlob {
  readonly digest: B3Digest;
  readonly size: number;
}

/** A blob that may still be closing while later members are read; set before the tree is emitted. */
export interface BlobRef {
  value: StoredBlob | undefined;
}

export type FileLeaf = {
  readonly kind: 'file';
  readonly blob: BlobRef;
  readonly executable: boolean;
  /** Where tree-nar.ts spooled the file's bytes, while the NAR hash may want them. */
  spooled?: Spooled | undefined;
};
export type SymlinkLeaf = { readonly kind: 'symlink'; readonly target: Uint8Array };
export type Dir = { readonly kind: 'directory'; readonly children: Map<string, Child> };
export type TreeNode = FileLeaf | SymlinkLeaf | Dir;
export type Child = { readonly name: Uint8Array; node: TreeNode };

/**
 * Told of every change to a directory's entries, before it is made: `added` a new name, else the
 * entry at `name` is replaced. tree-nar.ts uses it to notice a change to what it has already hashed.
 */
export type TreeWatcher = (dir: Dir, name: string, added: boolean) => void;

const SLASH = new Uint8Array([0x2f]);

/** Latin-1 keeps every byte, so it is a lossless map key for byte names (and sorts as the bytes do). */
export function key(name: Uint8Array): string {
  return Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString('latin1');
}

function joined(components: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  components.forEach((c, i) => {
    if (i > 0) parts.push(SLASH);
    parts.push(c);
  });
  return Buffer.concat(parts);
}

export class ArchiveTree {
  /** The archive root (members are below it); `top()` is the root of the result. */
  readonly root: Dir = { kind: 'directory', children: new Map() };
  private nodes = 0;
  /** Newest mtime (seconds since the epoch) of any member seen; 0 for an empty archive. */
  lastModified = 0;
  /** Told of every change to a directory (see `TreeWatcher`). */
  watcher: TreeWatcher | undefined;

  /** `maxEntries` bounds the nodes ever created, implied parents included. */
  constructor(private readonly maxEntries: number) {}

  /** Record a member's mtime; every member counts, even one replaced later. */
  touch(mtime: number): void {
    if (Number.isFinite(mtime) && mtime > this.lastModified) this.lastModified = Math.floor(mtime);
  }

  addDirectory(path: readonly Uint8Array[]): void {
    if (path.length === 0) return;
    const parent = this.parentOf(path);
    const name = path[path.length - 1]!;
    const existing = parent.children.get(key(name));
    if (existing === undefined) this.attach(parent, name, { kind: 'directory', children: new Map() });
    else if (existing.node.kind !== 'directory') {
      throw badArchive(
        `archive member is a directory where an earlier member is a ${existing.node.kind}`,
        joined(path),
      );
    }
  }

  /** Returns the leaf, which a hard link to `path` shares. */
  addFile(path: readonly Uint8Array[], blob: BlobRef, executable: boolean): FileLeaf {
    const leaf: FileLeaf = { kind: 'file', blob, executable };
    this.addLeaf(path, leaf);
    return leaf;
  }

  addSymlink(path: readonly Uint8Array[], target: Uint8Array): void {
    const problem = targetProblem(target);
    if (problem !== undefined) throw badArchive(`archive symlink is invalid (${problem})`, joined(path));
    this.addLeaf(path, { kind: 'symlink', target });
  }

  /**
   * A hard link becomes an independent regular file with the content and
   * executable bit of its target, which must be an earlier regular-file member
   * (as it stands now, after any replacements). Modern Nix copies whatever the
   * target is; we refuse links to symlinks and directories (no honest archiver
   * writes them).
   */
  addHardLink(path: readonly Uint8Array[], target: readonly Uint8Array[]): void {
    const node = this.lookup(target);
    if (node === undefined) {
      throw badArchive(
        `hard link target '${displayBytes(joined(target))}' is not an earlier member`,
        joined(path),
      );
    }
    if (node.kind !== 'file') {
      throw badArchive(`hard link target '${displayBytes(joined(target))}' is a ${node.kind}`, joined(path));
    }
    this.addLeaf(path, node);
  }

  /** The root of the result: the single top-level directory, if that is all there is, else the archive root. */
  top(): Dir {
    const only = this.root.children.size === 1 ? [...this.root.children.values()][0]! : undefined;
    return only !== undefined && only.node.kind === 'directory' ? only.node : this.root;
  }

  /**
   * The emission order `ingestEntries()` wants, from the selected root. Each entry leaves the tree as
   * it is emitted, so that the tree and the ingest's own record of it are not both held to the end
   * (78,579 files for the linux source tree): walk it once, last.
   */
  *entries(): Generator<IngestEntry> {
    yield* emit(this.top());
  }

  private addLeaf(path: readonly Uint8Array[], leaf: FileLeaf | SymlinkLeaf): void {
    if (path.length === 0) throw badArchive(`archive member for the root directory is a ${leaf.kind}`);
    const parent = this.parentOf(path);
    const name = path[path.length - 1]!;
    const existing = parent.children.get(key(name));
    if (existing === undefined) this.attach(parent, name, leaf);
    else {
      this.watcher?.(parent, key(name), false);
      existing.node = leaf;
    }
  }

  private lookup(path: readonly Uint8Array[]): TreeNode | undefined {
    let node: TreeNode = this.root;
    for (const c of path) {
      if (node.kind !== 'directory') return undefined;
      const child: Child | undefined = node.children.get(key(c));
      if (child === undefined) return undefined;
      node = child.node;
    }
    return node;
  }

  /** The directory `path` lives in, creating implied parents. */
  private parentOf(path: readonly Uint8Array[]): Dir {
    let dir = this.root;
    for (let i = 0; i < path.length - 1; i++) {
      const name = path[i]!;
      const child = dir.children.get(key(name));
      if (child === undefined) {
        const created: Dir = { kind: 'directory', children: new Map() };
        this.attach(dir, name, created);
        dir = created;
      } else if (child.node.kind === 'directory') {
        dir = child.node;
      } else {
        throw badArchive(
          `archive member path goes through the ${child.node.kind} '${displayBytes(joined(path.slice(0, i + 1)))}'`,
          joined(path),
        );
      }
    }
    return dir;
  }

  private attach(dir: Dir, name: Uint8Array, node: TreeNode): void {
    if (++this.nodes > this.maxEntries) {
      throw badArchive(`archive has more than ${this.maxEntries} entries`);
    }
    const k = key(name);
    this.watcher?.(dir, k, true);
    dir.children.set(k, { name, node });
  }
}

/** Post-order walk with an explicit stack; the root (empty path) comes last. */
function* emit(top: Dir): Generator<IngestEntry> {
  type Frame = {
    readonly path: Uint8Array[];
    readonly dir: Dir;
    readonly pending: Iterator<[string, Child]>;
  };
  const stack: Frame[] = [{ path: [], dir: top, pending: top.children.entries() }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    const next = frame.pending.next();
    if (next.done) {
      stack.pop();
      yield { type: 'directory', path: joined(frame.path) };
      continue;
    }
    const [k, { name, node }] = next.value;
    frame.dir.children.delete(k); // a Map's iterator goes on past the entry it just gave
    const path = [...frame.path, name];
    if (node.kind === 'directory') stack.push({ path, dir: node, pending: node.children.entries() });
    else if (node.kind === 'symlink') yield { type: 'symlink', path: joined(path), target: node.target };
    else {
      const blob = node.blob.value;
      if (blob === undefined) throw new TypeError('archive tree emitted before its blobs were stored');
      yield { type: 'file', path: joined(path), executable: node.executable, blob };
    }
  }
}
