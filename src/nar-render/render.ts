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

/** NAR bytes of `node` from byte `offset` on (default 0). An offset past the end yields nothing. */
export async function* renderNar(
  node: Node,
  services: RenderServices,
  offset = 0,
): AsyncGenerator<Uint8Array> {
  if (!(Number.isSafeInteger(offset) && offset >= 0)) throw new RangeError(`invalid NAR offset ${offset}`);
  const r = new Renderer(services, offset);
  r.put(TOK_NAR);
  yield* r.node(node);
  const last = r.take();
  if (last) yield last;
}

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

class Renderer {
  /** NAR bytes produced so far, including the skipped ones. */
  private pos = 0;
  private readonly buf = new Uint8Array(BATCH);
  private used = 0;
  private readonly sizer: Sizer;
  /** Reads started ahead, by file node (see READ_AHEAD). */
  private readonly ahead = new Map<Node, ReturnType<BlobService['read']>>();

  constructor(
    private readonly services: RenderServices,
    private readonly offset: number,
  ) {
    this.sizer = new Sizer(services);
  }

  /** Append token bytes; bytes before the offset are dropped. Never yields by itself. */
  put(bytes: Uint8Array): Uint8Array | undefined {
    const start = this.pos;
    this.pos += bytes.length;
    if (this.pos <= this.offset) return undefined;
    return this.append(start >= this.offset ? bytes : bytes.subarray(this.offset - start));
  }

  /** Add bytes (at most BATCH) to the batch; returns the previous batch when it had to make room. */
  private append(bytes: Uint8Array): Uint8Array | undefined {
    let full: Uint8Array | undefined;
    if (this.used + bytes.length > this.buf.length) full = this.take();
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
    return full;
  }

  /** The batched bytes, if any, as a fresh array. */
  take(): Uint8Array | undefined {
    if (this.used === 0) return undefined;
    const out = this.buf.slice(0, this.used);
    this.used = 0;
    return out;
  }

  private putU64(n: number): Uint8Array | undefined {
    const b = new Uint8Array(8);
    writeU64(b, 0, n);
    return this.put(b);
  }

  private putStr(s: Uint8Array): Uint8Array[] {
    return [this.putU64(s.length), this.put(s), this.put(ZEROS.subarray(0, padLen(s.length)))].filter(
      (x): x is Uint8Array => x !== undefined,
    );
  }

  /** Is the whole node of this body size before the offset? Then count it and skip it. */
  private async skip(node: Node): Promise<boolean> {
    if (this.pos >= this.offset) return false;
    const size = await this.sizer.node(node);
    if (this.pos + size > this.offset) return false;
    this.pos += size;
    return true;
  }

  async *node(node: Node): AsyncGenerator<Uint8Array> {
    if (await this.skip(node)) return;
    switch (node.type) {
      case 'symlink': {
        yield* emit(this.put(TOK_SYM));
        yield* this.putStr(node.target);
        yield* emit(this.put(TOK_PAR));
        return;
      }
      case 'file': {
        yield* emit(this.put(node.executable ? TOK_EXE : TOK_REG));
        yield* emit(this.putU64(node.size));
        yield* this.contents(node);
        yield* emit(this.put(ZEROS.subarray(0, padLen(node.size))));
        yield* emit(this.put(TOK_PAR));
        return;
      }
      case 'directory': {
        const dir = await getDirectory(this.services, node);
        yield* emit(this.put(TOK_DIR));
        // Read ahead only once past the offset: a range render reads no blob before it.
        const files =
          this.pos >= this.offset ? [...dir].filter((e) => e.node.type === 'file' && e.node.size > 0) : [];
        let started = 0;
        let index = 0;
        for (const e of dir) {
          if (files[index]?.node === e.node) {
            for (; started < files.length && started < index + READ_AHEAD; started++)
              this.readAhead(files[started]!.node);
            index++;
          }
          yield* emit(this.put(TOK_ENT));
          yield* this.putStr(e.name);
          yield* emit(this.put(TOK_NOD));
          yield* this.node(e.node);
          yield* emit(this.put(TOK_PAR));
        }
        yield* emit(this.put(TOK_PAR));
      }
    }
  }

  private readAhead(node: Node): void {
    if (node.type !== 'file' || this.ahead.has(node)) return;
    const read = this.services.blobs.read(node.digest, 0);
    // Failures surface when the file is rendered; do not leave them unhandled meanwhile.
    read.catch(() => {});
    this.ahead.set(node, read);
  }

  private async *contents(node: Node & { type: 'file' }): AsyncGenerator<Uint8Array> {
    const start = this.pos;
    this.pos += node.size;
    if (this.pos <= this.offset || node.size === 0) return;
    const inner = Math.max(0, this.offset - start);
    // Small whole files join the token batch; others go out as their chunks.
    const inline = inner === 0 && node.size <= INLINE;
    if (!inline) {
      const pending = this.take();
      if (pending) yield pending;
    }
    const early = this.ahead.get(node);
    this.ahead.delete(node);
    const chunks = await (early ?? this.services.blobs.read(node.digest, inner));
    const hex = b3ToHex(node.digest);
    if (chunks === undefined) {
      throw new FetchCacheError('ERR_INTEGRITY', `blob ${hex} is missing from the store`, { expected: hex });
    }
    let got = inner;
    for await (const chunk of chunks) {
      got += chunk.length;
      if (got > node.size) break;
      if (inline) yield* emit(this.append(chunk));
      else yield chunk;
    }
    if (got !== node.size) {
      throw new FetchCacheError('ERR_INTEGRITY', `blob ${hex} has ${got} bytes, its node says ${node.size}`, {
        expected: String(node.size),
        actual: String(got),
      });
    }
  }
}

function* emit(chunk: Uint8Array | undefined): Generator<Uint8Array> {
  if (chunk) yield chunk;
}
