/**
 * Render a castore node as NAR bytes, streaming, starting at any byte offset.
 *
 * The NAR layout is a pure function of metadata (names, file sizes, symlink
 * targets), so a render that starts at `offset` skips whole subtrees and file
 * contents before it by size alone — no blob before the offset is read — and
 * starts the first blob it needs at the right position inside it. Offset 0 is
 * the plain full render. This is what HTTP Range requests on `nar/*.nar` use.
 *
 * Tokens are emitted exactly as the canonical writer does (src/nix/nar), from
 * the same pre-assembled token runs; castore directories are already sorted
 * and validated, so nothing is re-checked here except that stored blobs have
 * the size their node claims.
 */

import type { Capabilities, SegmentRun } from '../blob/capabilities.js';
import type { BlobService } from '../blob/service.js';
import { b3ToHex } from '../castore/digest.js';
import type { Directory } from '../castore/directory.js';
import type { Node } from '../castore/nodes.js';
import type { DirectoryService } from '../directory/service.js';
import { FetchCacheError } from '../errors.js';
import {
  directoryEntrySize,
  EMPTY_DIRECTORY_NODE_SIZE,
  NAR_HEADER_SIZE,
  regularNodeSize,
  symlinkNodeSize,
} from '../nix/nar/encoder.js';
import {
  padLen,
  TOK_DIR,
  TOK_ENT,
  TOK_EXE,
  TOK_NAR,
  TOK_NOD,
  TOK_PAR,
  TOK_REG,
  TOK_SYM,
  writeU64,
} from '../nix/nar/wire.js';

export interface RenderServices {
  readonly blobs: BlobService;
  readonly directories: DirectoryService;
  /** The store's fast paths, where it has them (single-chunk reads, file segments). */
  readonly capabilities?: Capabilities | undefined;
}

const ZEROS = new Uint8Array(8);
const BATCH = 64 * 1024;
/**
 * Files of a directory whose reads are started ahead of rendering them, so
 * the store's lookups overlap instead of running one after another (a tree
 * of small files is otherwise one database round trip per file, waited for).
 * Bounds memory by this many blobs' first chunks.
 */
const READ_AHEAD = 32;
/** Files up to this size are copied into the token batch instead of being sent on their own. */
const INLINE = 16 * 1024;

/** Files at least this large are rendered as file segments by `renderNarPieces` (where the store can). */
export const SEGMENT_MIN = 1 << 20;

/** NAR bytes of `node` from byte `offset` on (default 0). An offset past the end yields nothing. */
export function renderNar(node: Node, services: RenderServices, offset = 0): AsyncGenerator<Uint8Array> {
  return render(node, services, offset, false) as AsyncGenerator<Uint8Array>;
}

/**
 * The whole NAR of `node`, with the contents of files of at least SEGMENT_MIN bytes as runs of file
 * segments where the store can give them (`Capabilities.fileSegments`; verified as they are
 * produced), for sending with sendfile(2); the consumer calls each run's `release()` once it is sent
 * (or abandoned). Everything else is bytes, exactly as `renderNar` yields them.
 */
export function renderNarPieces(
  node: Node,
  services: RenderServices,
): AsyncGenerator<Uint8Array | SegmentRun> {
  return render(node, services, 0, true);
}

async function* render(
  node: Node,
  services: RenderServices,
  offset: number,
  segments: boolean,
): AsyncGenerator<Piece> {
  if (!(Number.isSafeInteger(offset) && offset >= 0)) throw new RangeError(`invalid NAR offset ${offset}`);
  const r = new Renderer(services, offset, segments && services.capabilities?.fileSegments !== undefined);
  if (offset === 0 && node.type === 'directory') await r.loadTree(node);
  r.put(TOK_NAR);
  yield* r.node(node);
  for (const c of r.takeAll()) yield c;
}

type Piece = Uint8Array | SegmentRun;

/** NarSize of `node` from metadata alone: directories are read, blobs are not. */
export async function narSizeOf(node: Node, services: RenderServices): Promise<number> {
  return NAR_HEADER_SIZE + (await new Sizer(services).node(node));
}

/** Sizes of node bodies (everything after their `"(" "type"`), memoised per directory. */
class Sizer {
  private readonly memo = new Map<string, number>();
  constructor(private readonly services: RenderServices) {}

  async node(node: Node): Promise<number> {
    switch (node.type) {
      case 'file':
        return regularNodeSize(node.executable, node.size);
      case 'symlink':
        return symlinkNodeSize(node.target.length);
      case 'directory': {
        const k = b3ToHex(node.digest);
        const known = this.memo.get(k);
        if (known !== undefined) return known;
        const dir = await getDirectory(this.services, node);
        let size = EMPTY_DIRECTORY_NODE_SIZE;
        for (const e of dir) size += directoryEntrySize(e.name.length, await this.node(e.node));
        this.memo.set(k, size);
        return size;
      }
    }
  }
}

async function getDirectory(
  services: RenderServices,
  node: Node & { type: 'directory' },
): Promise<Directory> {
  const dir = await services.directories.get(node.digest);
  if (dir === undefined) {
    throw new FetchCacheError(
      'ERR_INTEGRITY',
      `directory ${b3ToHex(node.digest)} is missing from the store`,
      {
        expected: b3ToHex(node.digest),
      },
    );
  }
  return dir;
}

type Ahead =
  | { readonly small: true; readonly read: Promise<Uint8Array | undefined> }
  | {
      readonly small: false;
      readonly read: ReturnType<BlobService['read']>;
    };

/**
 * The render loop. Tokens go into a 64 KiB batch (`put`); full batches wait
 * in `ready` and are yielded between entries, so one small file costs no
 * generator of its own: its tokens and bytes are appended in the directory
 * loop, its bytes fetched ahead in groups (one database read for a group,
 * see GetBatcher in src/blob/chunk-store.ts). Measured on `nar` of a
 * 20,000-file tree, a generator per token and per file was most of the time.
 */
class Renderer {
  /** NAR bytes produced so far, including the skipped ones. */
  private pos = 0;
  private readonly buf = new Uint8Array(BATCH);
  private used = 0;
  /** Full batches, in order, not yielded yet. */
  private ready: Uint8Array[] = [];
  private readonly sizer: Sizer;
  /** Reads started ahead, by file node (see READ_AHEAD). */
  private readonly ahead = new Map<Node, Ahead>();
  /**
   * For a full render of a tree: every directory, loaded up front (one
   * database read per level of the tree, not one per directory), and every
   * non-empty file in NAR order, so reads run ahead across directory
   * boundaries instead of starting cold in each directory. Metadata only.
   */
  private dirs: Map<string, Directory> | undefined;
  private order: Node[] | undefined;
  private fileIndex = 0;
  private started = 0;

  constructor(
    private readonly services: RenderServices,
    private readonly offset: number,
    /** Large files as segment runs (renderNarPieces). */
    private readonly segments = false,
  ) {
    this.sizer = new Sizer(services);
  }

  async loadTree(root: Node & { type: 'directory' }): Promise<void> {
    const dirs = new Map<string, Directory>();
    for await (const dir of this.services.directories.getRecursive(root.digest))
      dirs.set(b3ToHex(dir.digest()), dir);
    const order: Node[] = [];
    const visit = (digest: Uint8Array): void => {
      const dir = dirs.get(b3ToHex(digest));
      if (dir === undefined) return; // the render reports it
      for (const { node } of dir) {
        if (node.type === 'directory') visit(node.digest);
        else if (node.type === 'file' && node.size > 0) order.push(node);
      }
    };
    visit(root.digest);
    this.dirs = dirs;
    this.order = order;
  }

  /** Rendering reached the next non-empty file of `order`: keep reads started ahead of it. */
  private advance(): void {
    const order = this.order!;
    if (this.started - this.fileIndex <= READ_AHEAD / 2) {
      for (; this.started < order.length && this.started < this.fileIndex + READ_AHEAD; this.started++)
        this.readAhead(order[this.started]!);
    }
    this.fileIndex++;
  }

  private async directory(node: Node & { type: 'directory' }): Promise<Directory> {
    return this.dirs?.get(b3ToHex(node.digest)) ?? getDirectory(this.services, node);
  }

  /** Append token bytes; bytes before the offset are dropped. */
  put(bytes: Uint8Array): void {
    const start = this.pos;
    this.pos += bytes.length;
    if (this.pos <= this.offset) return;
    this.append(start >= this.offset ? bytes : bytes.subarray(this.offset - start));
  }

  /** Add bytes to the batch, moving the batch to `ready` whenever it fills. */
  private append(bytes: Uint8Array): void {
    let from = 0;
    while (from < bytes.length) {
      const n = Math.min(bytes.length - from, this.buf.length - this.used);
      this.buf.set(n === bytes.length ? bytes : bytes.subarray(from, from + n), this.used);
      this.used += n;
      from += n;
      if (this.used === this.buf.length) this.ready.push(this.takeBatch()!);
    }
  }

  private takeBatch(): Uint8Array | undefined {
    if (this.used === 0) return undefined;
    const out = this.buf.slice(0, this.used);
    this.used = 0;
    return out;
  }

  /** Everything produced so far, in order: the full batches, then the partial one. */
  takeAll(): Uint8Array[] {
    const out = this.drain();
    const last = this.takeBatch();
    if (last) out.push(last);
    return out;
  }

  /** The full batches, removed. */
  drain(): Uint8Array[] {
    const out = this.ready;
    this.ready = [];
    return out;
  }

  private putU64(n: number): void {
    const b = new Uint8Array(8);
    writeU64(b, 0, n);
    this.put(b);
  }

  private putStr(s: Uint8Array): void {
    this.putU64(s.length);
    this.put(s);
    this.put(ZEROS.subarray(0, padLen(s.length)));
  }

  /** Is the whole node of this body size before the offset? Then count it and skip it. */
  private async skip(node: Node): Promise<boolean> {
    if (this.pos >= this.offset) return false;
    const size = await this.sizer.node(node);
    if (this.pos + size > this.offset) return false;
    this.pos += size;
    return true;
  }

  async *node(node: Node): AsyncGenerator<Piece> {
    if (await this.skip(node)) return;
    switch (node.type) {
      case 'symlink': {
        this.put(TOK_SYM);
        this.putStr(node.target);
        this.put(TOK_PAR);
        return;
      }
      case 'file': {
        this.put(node.executable ? TOK_EXE : TOK_REG);
        this.putU64(node.size);
        yield* this.contents(node);
        this.put(ZEROS.subarray(0, padLen(node.size)));
        this.put(TOK_PAR);
        return;
      }
      case 'directory': {
        const dir = await this.directory(node);
        this.put(TOK_DIR);
        // Read ahead only once past the offset: a range render reads no blob before it.
        const global = this.order !== undefined;
        const files =
          !global && this.pos >= this.offset
            ? [...dir].filter((e) => e.node.type === 'file' && e.node.size > 0)
            : [];
        let started = 0;
        let index = 0;
        for (const e of dir) {
          if (global && e.node.type === 'file' && e.node.size > 0) this.advance();
          else if (files[index]?.node === e.node) {
            // Refill in groups (whose lookups share one database read) once half the window is used.
            if (started - index <= READ_AHEAD / 2)
              for (; started < files.length && started < index + READ_AHEAD; started++)
                this.readAhead(files[started]!.node);
            index++;
          }
          this.put(TOK_ENT);
          this.putStr(e.name);
          this.put(TOK_NOD);
          const n = e.node;
          if (this.pos >= this.offset && n.type === 'symlink') {
            this.put(TOK_SYM);
            this.putStr(n.target);
            this.put(TOK_PAR);
          } else if (this.pos >= this.offset && n.type === 'file' && n.size <= INLINE) {
            this.put(n.executable ? TOK_EXE : TOK_REG);
            this.putU64(n.size);
            const bytes = await this.smallContents(n);
            if (bytes === undefined) {
              for (const c of this.drain()) yield c;
              yield* this.contents(n);
            } else {
              this.pos += bytes.length;
              this.append(bytes);
            }
            this.put(ZEROS.subarray(0, padLen(n.size)));
            this.put(TOK_PAR);
          } else {
            for (const c of this.drain()) yield c;
            yield* this.node(n);
          }
          this.put(TOK_PAR);
          if (this.ready.length > 0) for (const c of this.drain()) yield c;
        }
        this.put(TOK_PAR);
      }
    }
  }

  private readAhead(node: Node): void {
    if (node.type !== 'file' || this.ahead.has(node)) return;
    if (this.segments && node.size >= SEGMENT_MIN) return; // read as segments when its turn comes
    const readSmall = this.services.capabilities?.readSmall;
    const ahead: Ahead =
      node.size <= INLINE && readSmall !== undefined
        ? { small: true, read: readSmall(node.digest) }
        : { small: false, read: this.services.blobs.read(node.digest, 0) };
    // Failures surface when the file is rendered; do not leave them unhandled meanwhile.
    ahead.read.catch(() => {});
    this.ahead.set(node, ahead);
  }

  /**
   * The whole bytes of a small file starting at the current position (no
   * offset inside it), checked against its node's size; `undefined` when the
   * blob is not a single stored chunk (then `contents` reads it). The
   * position is left for the caller to advance.
   */
  private async smallContents(node: Node & { type: 'file' }): Promise<Uint8Array | undefined> {
    if (node.size === 0) return new Uint8Array(0);
    let ahead = this.ahead.get(node);
    if (ahead?.small !== true) {
      const readSmall = this.services.capabilities?.readSmall;
      if (ahead !== undefined || readSmall === undefined) return undefined;
      ahead = { small: true, read: readSmall(node.digest) };
    }
    this.ahead.delete(node);
    const bytes = await ahead.read;
    if (bytes === undefined) return undefined;
    if (bytes.length !== node.size) {
      const hex = b3ToHex(node.digest);
      throw new FetchCacheError(
        'ERR_INTEGRITY',
        `blob ${hex} has ${bytes.length} bytes, its node says ${node.size}`,
        {
          expected: String(node.size),
          actual: String(bytes.length),
        },
      );
    }
    return bytes;
  }

  private async *contents(node: Node & { type: 'file' }): AsyncGenerator<Piece> {
    const start = this.pos;
    this.pos += node.size;
    if (this.pos <= this.offset || node.size === 0) return;
    const inner = Math.max(0, this.offset - start);
    if (this.segments && inner === 0 && node.size >= SEGMENT_MIN) {
      const runs = await this.services.capabilities!.fileSegments!(node.digest);
      if (runs !== undefined) {
        for (const c of this.takeAll()) yield c;
        yield* this.segmentContents(node, runs);
        return;
      }
    }
    // Small whole files join the token batch; others go out as their chunks.
    const inline = inner === 0 && node.size <= INLINE;
    if (!inline) for (const c of this.takeAll()) yield c;
    const early = this.ahead.get(node);
    this.ahead.delete(node);
    const chunks = await (early?.small === false ? early.read : this.services.blobs.read(node.digest, inner));
    const hex = b3ToHex(node.digest);
    if (chunks === undefined) {
      throw new FetchCacheError('ERR_INTEGRITY', `blob ${hex} is missing from the store`, { expected: hex });
    }
    let got = inner;
    for await (const chunk of chunks) {
      got += chunk.length;
      if (got > node.size) break;
      if (inline) {
        this.append(chunk);
        for (const c of this.drain()) yield c;
      } else yield chunk;
    }
    if (got !== node.size) throw sizeMismatch(hex, got, node.size);
  }

  private async *segmentContents(
    node: Node & { type: 'file' },
    runs: AsyncIterable<SegmentRun>,
  ): AsyncGenerator<Piece> {
    let got = 0;
    for await (const run of runs) {
      for (const s of run.segments) got += s.length;
      if (got > node.size) {
        run.release();
        break;
      }
      yield run;
    }
    if (got !== node.size) throw sizeMismatch(b3ToHex(node.digest), got, node.size);
  }
}

function sizeMismatch(hex: string, got: number, size: number): FetchCacheError {
  return new FetchCacheError('ERR_INTEGRITY', `blob ${hex} has ${got} bytes, its node says ${size}`, {
    expected: String(size),
    actual: String(got),
  });
}
