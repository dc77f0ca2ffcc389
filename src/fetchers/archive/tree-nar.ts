/**
 * The NAR SHA-256 and size of an archive's tree, computed while its members
 * stream into the store (one pass: the stored tree is not read back to hash
 * it, as nar-calc.ts would).
 *
 * A NAR lists every directory's entries sorted bytewise, an archive lists its
 * members in any order, and SHA-256 must see the NAR's bytes in NAR order.
 * So file contents are held in memory (copied, up to `holdBytes` in all) and
 * hashed in NAR order as late as possible: when the tree is complete, or
 * earlier when the held bytes pass `holdBytes` (the NAR is then written up to
 * where that frees half of them) or a file too large to hold arrives (the NAR
 * is written up to it, and its bytes are hashed as they pass). Writing ahead
 * of the end of the archive is a guess that no later member sorts before
 * what was written: archivers write a directory's members together and
 * nearly sorted (git archive, npm pack, tar of a directory), so a late member
 * that sorts earlier is rare once a window of `holdBytes` has passed. If one
 * comes all the same, or any member changes what was already hashed (a
 * duplicate replacing an earlier member, a second top-level entry that
 * changes the root), the guess failed: `finish()` returns `undefined` and the
 * caller renders the NAR from the store (the general path, nar-calc.ts).
 *
 * The root is chosen as `ArchiveTree.top()` chooses it; hashing ahead of the
 * end assumes the choice seen then (a single top-level directory, or the
 * archive root) stays. Bytes of a file that is needed again after they were
 * hashed and dropped (a hard link to it) are read back from the blob store:
 * one file, not the tree.
 */

import type { BlobService } from '../../blob/service.js';
import type { NarSum } from '../../nar-render/nar-calc.js';
import { createHasher, type Hasher } from '../../nix/hashing.js';
import { NarEncoder } from '../../nix/nar/encoder.js';
import type { ArchiveTree, Dir, FileLeaf } from './tree.js';

/** Default bytes of file contents held for the NAR hash (the window an out-of-order member may fall in). */
export const DEFAULT_HOLD_BYTES = 24 * 1024 * 1024;

/** A directory whose NAR listing has been started. */
interface Listing {
  readonly dir: Dir;
  /** Its entry names (latin1 keys, which sort as their bytes), in NAR order; `next` is the first not written. */
  readonly names: string[];
  next: number;
  /** Every entry written and the listing closed. */
  closed: boolean;
}

export class TreeNar {
  private readonly hasher: Hasher = createHasher('sha256');
  private narSize = 0;
  private readonly enc = new NarEncoder(
    (c) => {
      this.hasher.update(c);
      this.narSize += c.length;
    },
    { lendBuffer: true },
  );
  /** Open listings, outermost first; empty before the first write and after the root is closed. */
  private readonly stack: Listing[] = [];
  private readonly listings = new Map<Dir, Listing>();
  private started = false;
  private failed = false;
  private heldBytes = 0;
  private readonly heldLeaves = new Set<FileLeaf>();
  /** Bytes of the file being hashed as it streams (`stream()`) still to come. */
  private streamLeft = 0;

  /**
   * Watches `tree` from now on. `blobs` and `settled` (every blob of the tree stored) serve the
   * read-back of a file whose bytes were dropped.
   */
  constructor(
    private readonly tree: ArchiveTree,
    private readonly blobs: BlobService,
    private readonly settled: () => Promise<void>,
    private readonly holdBytes = DEFAULT_HOLD_BYTES,
  ) {
    tree.watcher = (dir, name, added) => this.changed(dir, name, added);
  }

  /** False once the guess failed: nothing more is held or hashed. */
  get active(): boolean {
    return !this.failed;
  }

  /** Whether a file of `size` bytes should be hashed as it streams (`stream()`) rather than held (`hold()`). */
  shouldStream(size: number): boolean {
    return !this.failed && this.heldBytes + size > this.holdBytes;
  }

  /** Keep `content` (the whole file, a copy the caller gives up) of `leaf`, just added to the tree. */
  async hold(leaf: FileLeaf, content: Uint8Array): Promise<void> {
    if (this.failed) return;
    leaf.content = content;
    this.heldBytes += content.length;
    this.heldLeaves.add(leaf);
    if (this.heldBytes > this.holdBytes) await this.write({ heldAtMost: this.holdBytes / 2 });
  }

  /**
   * Write the NAR up to `leaf` (of `size` bytes, just added to the tree), whose bytes then go
   * through `contents()` as they stream; they must add up to `size`.
   */
  async stream(leaf: FileLeaf, size: number): Promise<void> {
    if (this.failed) return;
    await this.write({ leaf, size });
    if (!this.failed) this.streamLeft = size;
  }

  /** The next bytes of the streaming file. */
  contents(chunk: Uint8Array): void {
    if (this.failed || chunk.length === 0) return;
    if (chunk.length > this.streamLeft) {
      this.fail();
      return;
    }
    this.streamLeft -= chunk.length;
    this.guard(() => this.enc.contents(chunk));
  }

  /** Stop: the NAR is left to the renderer. */
  giveUp(): void {
    this.fail();
  }

  /** The NAR sum of the finished tree, or `undefined` when the guess failed (render it instead). */
  async finish(): Promise<NarSum | undefined> {
    if (this.failed) return undefined;
    if (this.started && this.stack.length > 0 && this.stack[0]!.dir !== this.tree.top()) this.fail();
    await this.write({});
    if (this.failed) return undefined;
    if (!this.guard(() => this.enc.finish())) return undefined;
    return { narSha256: this.hasher.digest(), narSize: this.narSize };
  }

  /**
   * Write the NAR onwards: up to (and including the header of) `to.leaf`, or until at most
   * `to.heldAtMost` bytes are held, or (neither given) to the end.
   */
  private async write(to: { leaf?: FileLeaf; size?: number; heldAtMost?: number }): Promise<void> {
    if (this.streamLeft > 0) this.fail(); // the last streamed file ended short
    if (!this.started) this.start();
    while (!this.failed && this.stack.length > 0) {
      if (to.heldAtMost !== undefined && this.heldBytes <= to.heldAtMost) return;
      const top = this.stack[this.stack.length - 1]!;
      if (top.next === top.names.length) {
        top.closed = true;
        this.stack.pop();
        this.guard(() => this.enc.end());
        continue;
      }
      const child = top.dir.children.get(top.names[top.next++]!)!;
      const node = child.node;
      if (!this.guard(() => this.enc.entry(child.name))) return;
      if (node.kind === 'directory') {
        if (this.guard(() => this.enc.directory())) this.open(node);
      } else if (node.kind === 'symlink') {
        this.guard(() => this.enc.symlink(node.target));
      } else if (node === to.leaf) {
        this.guard(() => this.enc.regular(node.executable, to.size!));
        return;
      } else {
        await this.file(node);
      }
    }
    if (to.leaf !== undefined) this.fail(); // never reached: it sorts before what was written
  }

  /** The root listing: the tree's root as it is chosen now (see the header). */
  private start(): void {
    this.started = true;
    const top = this.tree.top();
    if (top !== this.tree.root) {
      // Any change to the archive root now changes which directory is the root.
      this.listings.set(this.tree.root, { dir: this.tree.root, names: [], next: 0, closed: true });
    }
    if (this.guard(() => this.enc.directory())) this.open(top);
  }

  private open(dir: Dir): void {
    const listing: Listing = { dir, names: [...dir.children.keys()].sort(), next: 0, closed: false };
    this.listings.set(dir, listing);
    this.stack.push(listing);
  }

  /** A file's node, from the bytes held, else read back from the store. */
  private async file(leaf: FileLeaf): Promise<void> {
    const held = leaf.content;
    if (held !== undefined) {
      this.release(leaf);
      if (this.guard(() => this.enc.regular(leaf.executable, held.length)) && held.length > 0) {
        this.guard(() => this.enc.contents(held));
      }
      return;
    }
    await this.settled();
    const blob = leaf.blob.value;
    const bytes = blob === undefined ? undefined : await this.blobs.read(blob.digest);
    if (blob === undefined || bytes === undefined) {
      this.fail();
      return;
    }
    if (!this.guard(() => this.enc.regular(leaf.executable, blob.size))) return;
    for await (const chunk of bytes) if (!this.guard(() => this.enc.contents(chunk))) return;
  }

  private release(leaf: FileLeaf): void {
    if (leaf.content === undefined) return;
    this.heldBytes -= leaf.content.length;
    leaf.content = undefined;
    this.heldLeaves.delete(leaf);
  }

  /** The tree is about to change `dir` at `name`: fine where nothing was written yet, else the guess failed. */
  private changed(dir: Dir, name: string, added: boolean): void {
    if (this.failed) return;
    const replaced = added ? undefined : dir.children.get(name)?.node;
    if (replaced?.kind === 'file') this.release(replaced); // its bytes are no longer wanted here
    const listing = this.listings.get(dir);
    if (listing === undefined) return;
    const written = listing.next > 0 ? listing.names[listing.next - 1]! : undefined;
    if (listing.closed || (written !== undefined && name <= written)) {
      this.fail();
      return;
    }
    if (!added) return;
    // A new name after the last one written: into its place among those still to come.
    let lo = listing.next;
    let hi = listing.names.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (listing.names[mid]! < name) lo = mid + 1;
      else hi = mid;
    }
    listing.names.splice(lo, 0, name);
  }

  /** Run an encoder step; a refusal (a name or depth no NAR may have) leaves the answer to the renderer. */
  private guard(step: () => void): boolean {
    try {
      step();
      return true;
    } catch {
      this.fail();
      return false;
    }
  }

  private fail(): void {
    this.failed = true;
    this.streamLeft = 0;
    for (const leaf of this.heldLeaves) leaf.content = undefined;
    this.heldLeaves.clear();
    this.heldBytes = 0;
    this.stack.length = 0;
  }
}
