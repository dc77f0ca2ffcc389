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
 * changes the root), the guess failed (npm packs sort by base name, so theirs
 * often does): the hash starts over at the end of the archive, with nothing
 * written ahead any more. The bytes of every file that does not fit the
 * window go to a temp file (under the cache root's `tmp/`, as the zip
 * spool), also while they are hashed as they pass, so that a failed guess
 * re-reads them there and not from the store (an npm pack that begins with
 * its one 100 MB binary: 0.79 → 0.65 s). At the end the whole NAR is hashed
 * in order from the held bytes, the spool and, for the small files hashed
 * and dropped before the guess failed, the blob store.
 *
 * The root is chosen as `ArchiveTree.top()` chooses it; hashing ahead of the
 * end assumes the choice seen then (a single top-level directory, or the
 * archive root) stays. Bytes of a file that is needed again after they were
 * hashed and dropped (a hard link to it) are read back from the blob store:
 * one file, not the tree. Only a tree no NAR can hold (a name or nesting the
 * encoder refuses) gives `undefined`, for the renderer to decide.
 */

import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlobService } from '../../blob/service.js';
import { tempRoot } from '../../fs/temp.js';
import type { NarSum } from '../../nar-render/nar-calc.js';
import { createHasher, type Hasher } from '../../nix/hashing.js';
import { NarEncoder } from '../../nix/nar/encoder.js';
import type { ArchiveTree, Dir, FileLeaf } from './tree.js';

/** Default bytes of file contents held for the NAR hash (the window an out-of-order member may fall in). */
export const DEFAULT_HOLD_BYTES = 24 * 1024 * 1024;

/** Bytes read from the spool at a time. */
const SPOOL_READ = 1 << 20;

/** A directory whose NAR listing has been started. */
interface Listing {
  readonly dir: Dir;
  /** Its entry names (latin1 keys, which sort as their bytes), in NAR order; `next` is the first not written. */
  readonly names: string[];
  next: number;
  /** Every entry written and the listing closed. */
  closed: boolean;
}

/** How a file's bytes reach the hash (`TreeNar.plan`). */
export type Plan = 'hold' | 'stream' | 'spool' | 'none';

export interface TreeNarOptions {
  /** Bytes of contents held in memory (default `DEFAULT_HOLD_BYTES`). */
  readonly holdBytes?: number | undefined;
  /** The cache root, whose `tmp/` holds the spool (default: the OS temp dir). */
  readonly root?: string | undefined;
}

/** The temp file that keeps the bytes of the files too large for the window. */
interface Spool {
  readonly dir: string;
  readonly fd: number;
  size: number;
}

export class TreeNar {
  private hasher: Hasher = createHasher('sha256');
  private narSize = 0;
  private enc = this.encoder();
  /** Open listings, outermost first; empty before the first write and after the root is closed. */
  private readonly stack: Listing[] = [];
  private readonly listings = new Map<Dir, Listing>();
  private started = false;
  private failed = false;
  /** The guess failed: nothing is written before `finish()`, which hashes from the start. */
  private deferred = false;
  private spool: Spool | undefined;
  private readonly holdBytes: number;
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
    private readonly options: TreeNarOptions = {},
  ) {
    this.holdBytes = options.holdBytes ?? DEFAULT_HOLD_BYTES;
    tree.watcher = (dir, name, added) => this.changed(dir, name, added);
  }

  /**
   * How the bytes of the next file (`size` bytes) go: `hold` (copy them, then `hold()`), `spool`
   * (`spoolStart()`, `spoolContents()`, `spoolEnd()`), `stream` (spool them, and if `stream()` says
   * so give them to `contents()` too), or `none` (the NAR is left to the renderer).
   */
  plan(size: number): Plan {
    if (this.failed) return 'none';
    if (this.heldBytes + size <= this.holdBytes) return 'hold';
    return this.deferred ? 'spool' : 'stream';
  }

  /** Keep `content` (the whole file, a copy the caller gives up) of `leaf`, just added to the tree. */
  async hold(leaf: FileLeaf, content: Uint8Array): Promise<void> {
    if (this.failed) return;
    leaf.content = content;
    this.heldBytes += content.length;
    this.heldLeaves.add(leaf);
    if (this.heldBytes > this.holdBytes && !this.deferred)
      await this.write({ heldAtMost: this.holdBytes / 2 });
  }

  /**
   * Write the NAR up to `leaf` (of `size` bytes, just added to the tree), whose bytes then go
   * through `contents()` as they stream; they must add up to `size`. False when the guess failed on
   * the way: only spool them.
   */
  async stream(leaf: FileLeaf, size: number): Promise<boolean> {
    if (this.failed || this.deferred) return false;
    await this.write({ leaf, size });
    if (this.failed || this.deferred) return false;
    this.streamLeft = size;
    return true;
  }

  /** The next bytes of the streaming file. */
  contents(chunk: Uint8Array): void {
    if (this.failed || this.deferred || chunk.length === 0) return;
    if (chunk.length > this.streamLeft) {
      this.lose();
      return;
    }
    this.streamLeft -= chunk.length;
    this.guard(() => this.enc.contents(chunk));
  }

  /** Where the next spooled file starts. */
  spoolStart(): number {
    if (this.spool === undefined) {
      const parent = this.options.root === undefined ? tmpdir() : tempRoot(this.options.root);
      mkdirSync(parent, { recursive: true, mode: 0o700 });
      // `<name>-<pid>-<random>`: removed by removeStaleTempDirs if this process dies (fs/temp.ts).
      const dir = mkdtempSync(join(parent, `tar-nar-${process.pid}-`));
      this.spool = { dir, fd: openSync(join(dir, 'spool'), 'w+', 0o600), size: 0 };
    }
    return this.spool.size;
  }

  /** The next bytes of the file being spooled. */
  spoolContents(chunk: Uint8Array): void {
    const spool = this.spool!;
    for (let at = 0; at < chunk.length; )
      at += writeSync(spool.fd, chunk, at, chunk.length - at, spool.size + at);
    spool.size += chunk.length;
  }

  /** `leaf`'s bytes are the spool's from `start`, if there are `size` of them (else read back at the end). */
  spoolEnd(leaf: FileLeaf, start: number, size: number): void {
    if (this.spool !== undefined && this.spool.size - start === size) leaf.spooled = { offset: start, size };
  }

  /** The guess failed for a reason the caller knows (a member not the size it declared). */
  giveUp(): void {
    this.lose();
  }

  /** The NAR sum of the finished tree, or `undefined` when no NAR can hold it (render it instead). */
  async finish(): Promise<NarSum | undefined> {
    if (this.failed) return undefined;
    if (this.started && this.stack.length > 0 && this.stack[0]!.dir !== this.tree.top()) this.lose();
    await this.write({});
    if (this.failed) return undefined;
    if (!this.guard(() => this.enc.finish())) return undefined;
    return { narSha256: this.hasher.digest(), narSize: this.narSize };
  }

  /** Remove the spool, if there is one. Call it in `finally`. */
  close(): void {
    if (this.spool === undefined) return;
    closeSync(this.spool.fd);
    rmSync(this.spool.dir, { recursive: true, force: true });
    this.spool = undefined;
  }

  private encoder(): NarEncoder {
    return new NarEncoder(
      (c) => {
        this.hasher.update(c);
        this.narSize += c.length;
      },
      { lendBuffer: true },
    );
  }

  /**
   * Write the NAR onwards: up to (and including the header of) `to.leaf`, or until at most
   * `to.heldAtMost` bytes are held, or (neither given) to the end.
   */
  private async write(to: { leaf?: FileLeaf; size?: number; heldAtMost?: number }): Promise<void> {
    if (this.streamLeft > 0) this.lose(); // the last streamed file ended short
    if (this.deferred && to.leaf !== undefined) return;
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
    if (to.leaf !== undefined) this.lose(); // never reached: it sorts before what was written
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

  /** A file's node, from the bytes held, else the spool, else read back from the store. */
  private async file(leaf: FileLeaf): Promise<void> {
    const held = leaf.content;
    if (held !== undefined) {
      this.release(leaf);
      if (this.guard(() => this.enc.regular(leaf.executable, held.length)) && held.length > 0) {
        this.guard(() => this.enc.contents(held));
      }
      return;
    }
    const spooled = leaf.spooled;
    if (spooled !== undefined && this.spool !== undefined) {
      if (!this.guard(() => this.enc.regular(leaf.executable, spooled.size))) return;
      // The hash takes each piece before the next read (the encoder hands large pieces straight to it).
      const buffer = Buffer.allocUnsafe(Math.min(spooled.size, SPOOL_READ));
      for (let at = 0; at < spooled.size; ) {
        const n = readSync(
          this.spool.fd,
          buffer,
          0,
          Math.min(buffer.length, spooled.size - at),
          spooled.offset + at,
        );
        if (n <= 0) {
          this.fail();
          return;
        }
        at += n;
        if (!this.guard(() => this.enc.contents(buffer.subarray(0, n)))) return;
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
    if (this.failed || this.deferred) {
      if (!this.failed && !added) {
        const old = dir.children.get(name)?.node;
        if (old?.kind === 'file') this.release(old);
      }
      return;
    }
    const replaced = added ? undefined : dir.children.get(name)?.node;
    if (replaced?.kind === 'file') this.release(replaced); // its bytes are no longer wanted here
    const listing = this.listings.get(dir);
    if (listing === undefined) return;
    const written = listing.next > 0 ? listing.names[listing.next - 1]! : undefined;
    if (listing.closed || (written !== undefined && name <= written)) {
      this.lose();
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

  /**
   * The guess failed: forget what was hashed and hash it all again at the end (held bytes are kept;
   * those already dropped are read back from the store then).
   */
  private lose(): void {
    if (this.failed || this.deferred) return;
    this.deferred = true;
    this.hasher = createHasher('sha256');
    this.narSize = 0;
    this.enc = this.encoder();
    this.stack.length = 0;
    this.listings.clear();
    this.started = false;
    this.streamLeft = 0;
  }

  /** No NAR can hold the tree: stop; the renderer gives the answer (or the error). */
  private fail(): void {
    this.failed = true;
    this.streamLeft = 0;
    for (const leaf of this.heldLeaves) leaf.content = undefined;
    this.heldLeaves.clear();
    this.heldBytes = 0;
    this.stack.length = 0;
  }
}
