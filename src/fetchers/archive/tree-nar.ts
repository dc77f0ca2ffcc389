/**
 * The NAR SHA-256 and size of an archive's tree, computed while its members
 * stream into the store (one pass: the stored tree is not read back to hash
 * it, as nar-calc.ts would).
 *
 * A NAR lists every directory's entries sorted bytewise, an archive lists its
 * members in any order, and SHA-256 must see the NAR's bytes in NAR order.
 * So every file's bytes also go to a spool (temp files under the cache root's
 * `tmp/`, as the zip spool: the page cache keeps them, not the heap), and are
 * hashed from there in NAR order as late as possible: when the tree is
 * complete, or earlier when the spooled bytes not yet hashed pass `holdBytes`
 * (the NAR is then written up to where that frees half of them), or when a
 * file too large for that window arrives (the NAR is written up to it, and
 * its bytes are hashed as they pass too). Writing ahead of the end of the
 * archive is a guess that no later member sorts before what was written:
 * archivers write a directory's members together and nearly sorted (git
 * archive, npm pack, tar of a directory), so a late member that sorts earlier
 * is rare once a window of `holdBytes` has passed. If one comes all the same,
 * or any member changes what was already hashed (a duplicate replacing an
 * earlier member, a second top-level entry that changes the root), the guess
 * failed (npm packs sort by base name, so theirs often does): the hash starts
 * over at the end of the archive, with nothing written ahead any more, from
 * the spool and, for the files of the window hashed and dropped before the
 * guess failed, the blob store. A file too large for the window stays in the
 * spool to the end, so that a failed guess re-reads it there and not from the
 * store (an npm pack that begins with its one 100 MB binary: 0.79 → 0.65 s).
 *
 * The window is 128 MiB by default, so that a tree up to that size (nearly
 * every npm package and source tarball) is hashed once, at the end, whatever
 * its order; with 24 MiB, a failed guess on the next package (84 MB) or on
 * that binary's package hashed most of the tree twice (2.21 → 2.07 s and
 * 1.08 → 0.97 s). The spool is a series of files, each taking new files until
 * it holds half the window (at least 1 MiB) and deleted once nothing in it is
 * wanted any more: while the guess holds, the spool stays under one and a half
 * windows (164 MB at most for the linux source tree, whose unpacked copy in
 * Nix is 1.3 GB); once it failed, it grows to the tree's size, as Nix's
 * unpacked copy does. The window used to be held in memory: the copies
 * outlived V8's young generation and waited for a full GC, and the linux
 * tree's fetch peaked at 434 MiB of RSS in 27.7 s, against 318 MiB in 23.4 s
 * from the spool.
 *
 * The root is chosen as `ArchiveTree.top()` chooses it; hashing ahead of the
 * end assumes the choice seen then (a single top-level directory, or the
 * archive root) stays. Bytes of a file that is needed again after they were
 * hashed and dropped (a hard link to it) are read back from the blob store:
 * one file, not the tree. Only a tree no NAR can hold (a name or nesting the
 * encoder refuses) gives `undefined`, for the renderer to decide.
 */

import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlobService } from '../../blob/service.js';
import { tempRoot } from '../../fs/temp.js';
import type { NarSum } from '../../nar-render/nar-calc.js';
import { createHasher, type Hasher } from '../../nix/hashing.js';
import { NarEncoder } from '../../nix/nar/encoder.js';
import type { ArchiveTree, Dir, FileLeaf } from './tree.js';

/** Default bytes of spooled contents not yet hashed (the window an out-of-order member may fall in). */
export const DEFAULT_HOLD_BYTES = 128 * 1024 * 1024;

/** Small pieces are gathered to this many bytes for one write to the spool; reads take this many. */
const SPOOL_IO = 1 << 20;

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
  /** Bytes of spooled contents not yet hashed (default `DEFAULT_HOLD_BYTES`). */
  readonly holdBytes?: number | undefined;
  /** The cache root, whose `tmp/` holds the spool (default: the OS temp dir). */
  readonly root?: string | undefined;
}

/** One file of the spool. */
export interface Segment {
  readonly path: string;
  readonly fd: number;
  /** Bytes in it, those still gathered for a write included. */
  size: number;
  /** Files whose bytes in it are still wanted. */
  live: number;
}

/** Where the next spooled file starts (`TreeNar.spoolStart`). */
export interface SpoolMark {
  readonly segment: Segment;
  readonly offset: number;
}

/** Where a file's bytes are in the spool (`FileLeaf.spooled`). */
export interface Spooled extends SpoolMark {
  readonly size: number;
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
  private readonly holdBytes: number;
  /** A spool file takes new files until it holds this many bytes. */
  private readonly segmentBytes: number;
  /** Bytes of the window's files spooled and not yet hashed. */
  private heldBytes = 0;
  private readonly heldLeaves = new Set<FileLeaf>();
  /** The spool's temp directory, once there is one. */
  private spoolDir: string | undefined;
  /** The spool file new files go to. */
  private segment: Segment | undefined;
  /** The spool files not deleted yet. */
  private readonly segments = new Set<Segment>();
  private segmentsMade = 0;
  /** Small pieces gathered for one write at the end of `segment`. */
  private out: Buffer | undefined;
  private outLength = 0;
  /** The last read from the spool. */
  private lastRead: { segment: Segment; offset: number; length: number; bytes: Buffer } | undefined;
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
    this.segmentBytes = Math.max(this.holdBytes / 2, 1 << 20);
    tree.watcher = (dir, name, added) => this.changed(dir, name, added);
  }

  /**
   * How the bytes of the next file (`size` bytes) go: all but `none` (the NAR is left to the renderer)
   * are spooled (`spoolStart()`, `spoolContents()`, `spooled()`); `hold` counts them in the window,
   * `stream` gives them to `contents()` too if `stream()` says so, `spool` only spools them.
   */
  plan(size: number): Plan {
    if (this.failed) return 'none';
    if (this.deferred) return 'spool';
    return size <= this.holdBytes ? 'hold' : 'stream';
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
  spoolStart(): SpoolMark {
    let segment = this.segment;
    if (segment === undefined || segment.size >= this.segmentBytes) {
      this.flush();
      segment = this.newSegment();
      const previous = this.segment;
      this.segment = segment;
      if (previous !== undefined && previous.live === 0) this.drop(previous);
    }
    return { segment, offset: segment.size };
  }

  /** The next bytes of the file being spooled. */
  spoolContents(chunk: Uint8Array): void {
    const segment = this.segment!;
    if (chunk.length >= SPOOL_IO / 4) {
      this.flush();
      writeAll(segment.fd, chunk, segment.size);
    } else {
      if (this.outLength + chunk.length > SPOOL_IO) this.flush();
      this.out ??= Buffer.allocUnsafeSlow(SPOOL_IO);
      this.out.set(chunk, this.outLength);
      this.outLength += chunk.length;
    }
    segment.size += chunk.length;
  }

  /**
   * `leaf`'s bytes were spooled from `mark`; `hold`: they count in the window (the plan was `hold`).
   * Fewer or more than the `size` its header declared: the guess failed (they are read back at the end).
   */
  async spooled(leaf: FileLeaf, mark: SpoolMark, size: number, hold: boolean): Promise<void> {
    if (this.failed) return;
    if (mark.segment.size - mark.offset !== size) {
      this.lose();
      return;
    }
    leaf.spooled = { ...mark, size };
    mark.segment.live++;
    if (!hold || this.deferred) return;
    this.heldBytes += size;
    this.heldLeaves.add(leaf);
    if (this.heldBytes > this.holdBytes) await this.write({ heldAtMost: this.holdBytes / 2 });
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
    for (const segment of this.segments) closeSync(segment.fd);
    this.segments.clear();
    this.segment = undefined;
    this.lastRead = undefined;
    if (this.spoolDir !== undefined) rmSync(this.spoolDir, { recursive: true, force: true });
    this.spoolDir = undefined;
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

  /** A file's node, from the spool, else read back from the store. */
  private async file(leaf: FileLeaf): Promise<void> {
    const spooled = leaf.spooled;
    if (spooled !== undefined) {
      if (!this.guard(() => this.enc.regular(leaf.executable, spooled.size))) return;
      for (let at = 0; at < spooled.size; ) {
        const piece = this.read(spooled.segment, spooled.offset + at, spooled.size - at);
        if (piece.length === 0) {
          this.fail();
          return;
        }
        at += piece.length;
        if (!this.guard(() => this.enc.contents(piece))) return;
      }
      this.release(leaf);
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

  /** `leaf`'s spooled bytes are no longer wanted. */
  private release(leaf: FileLeaf): void {
    const spooled = leaf.spooled;
    if (spooled === undefined) return;
    leaf.spooled = undefined;
    if (this.heldLeaves.delete(leaf)) this.heldBytes -= spooled.size;
    if (--spooled.segment.live === 0 && spooled.segment !== this.segment) this.drop(spooled.segment);
  }

  /**
   * Up to `n` bytes of `segment` from `offset` (none past its end), valid until the next read. A read
   * that goes on where the last one ended takes `SPOOL_IO` bytes, which serve the small files after it
   * too (files hashed in the order they came); any other takes what is asked (in NAR order after a
   * failed guess, where reading ahead would copy bytes not wanted yet).
   */
  private read(segment: Segment, offset: number, n: number): Uint8Array {
    if (segment === this.segment) this.flush();
    let last = this.lastRead;
    if (
      last === undefined ||
      last.segment !== segment ||
      offset < last.offset ||
      offset >= last.offset + last.length
    ) {
      const bytes = last?.bytes ?? Buffer.allocUnsafeSlow(SPOOL_IO);
      const onwards = last !== undefined && last.segment === segment && offset === last.offset + last.length;
      const want = Math.min(onwards ? bytes.length : n, bytes.length, segment.size - offset);
      let length = 0;
      while (length < want) {
        const k = readSync(segment.fd, bytes, length, want - length, offset + length);
        if (k <= 0) break;
        length += k;
      }
      last = { segment, offset, length, bytes };
      this.lastRead = last;
    }
    const from = offset - last.offset;
    return last.bytes.subarray(from, Math.min(last.length, from + n));
  }

  /** Write the pieces gathered for the current spool file. */
  private flush(): void {
    if (this.outLength === 0) return;
    const segment = this.segment!;
    writeAll(segment.fd, this.out!.subarray(0, this.outLength), segment.size - this.outLength);
    this.outLength = 0;
  }

  private newSegment(): Segment {
    if (this.spoolDir === undefined) {
      const parent = this.options.root === undefined ? tmpdir() : tempRoot(this.options.root);
      mkdirSync(parent, { recursive: true, mode: 0o700 });
      // `<name>-<pid>-<random>`: removed by removeStaleTempDirs if this process dies (fs/temp.ts).
      this.spoolDir = mkdtempSync(join(parent, `tar-nar-${process.pid}-`));
    }
    const path = join(this.spoolDir, `spool-${this.segmentsMade++}`);
    const segment: Segment = { path, fd: openSync(path, 'w+', 0o600), size: 0, live: 0 };
    this.segments.add(segment);
    return segment;
  }

  /** Delete a spool file nothing wants any more. */
  private drop(segment: Segment): void {
    if (!this.segments.delete(segment)) return;
    if (this.lastRead?.segment === segment) this.lastRead = undefined;
    closeSync(segment.fd);
    unlinkSync(segment.path);
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
   * The guess failed: forget what was hashed and hash it all again at the end (from the spool; the
   * bytes of the window's files already hashed and dropped are read back from the store then).
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

  /** No NAR can hold the tree: stop; the renderer gives the answer (or the error). `close()` removes the spool. */
  private fail(): void {
    this.failed = true;
    this.streamLeft = 0;
    this.heldLeaves.clear();
    this.heldBytes = 0;
    this.stack.length = 0;
  }
}

/** All of `bytes` to `fd` at `position`. */
function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at, position + at);
}
