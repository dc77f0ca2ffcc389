/**
 * Streaming NAR writer (docs/formats.md §1). The caller describes a tree
 * depth first through a push API and the encoder emits canonical NAR bytes to a
 * sink; it never holds a whole NAR or a whole file. Small tokens are batched
 * into one buffer; file content chunks of at least `PASS_THROUGH` bytes are
 * handed to the sink as they are (zero copy), so the sink must not assume it
 * owns them and the caller must not reuse them until the sink is done.
 *
 * The encoder only produces NARs our parser (and nix@HEAD) accepts: names must
 * be strictly increasing bytewise (callers sort), valid (§1.3, ≤ 255 bytes),
 * symlink targets non-empty, NUL-free and ≤ 4095 bytes, nesting below 64,
 * contents exactly the declared size. Violations are programmer misuse and
 * throw TypeError; callers that take names from untrusted input validate with
 * `invalidNameReason` first and raise their own error.
 */

import {
  compareBytes,
  invalidNameReason,
  invalidTargetReason,
  NAR_MAX_DEPTH,
  padded,
  padLen,
  TOK_DIR,
  TOK_ENT,
  TOK_EXE,
  TOK_NAR,
  TOK_NOD,
  TOK_PAR,
  TOK_REG,
  TOK_SYM,
  toBytes,
  writeU64,
} from './wire.js';

/** Header tokens accumulate here before going to the sink. */
const BUFFER_SIZE = 64 * 1024;
/** Content chunks at least this large skip the buffer. */
const PASS_THROUGH = 8 * 1024;

type State = 'node' | 'contents' | 'directory' | 'done' | 'finished';

/** Writes a NAR incrementally, node by node, to a sink; names must come sorted. */
export class NarEncoder {
  readonly #sink: (chunk: Uint8Array) => void;
  readonly #buf = new Uint8Array(BUFFER_SIZE);
  #used = 0;
  #written = 0;
  #state: State = 'node';
  /** Last entry name of each open directory (null before the first entry). */
  readonly #dirs: (Uint8Array | null)[] = [];
  #fileSize = 0;
  #remaining = 0;
  readonly #lend: boolean;
  readonly #maxDepth: number;

  /**
   * `lendBuffer`: the sink consumes each chunk before it returns (a hasher),
   * so batched tokens may be handed out as a view of the internal buffer
   * instead of a fresh copy. `maxDepth`: the nesting refused (default
   * NAR_MAX_DEPTH, what parsers accept); a NAR that is only hashed, as by
   * `nix hash path`, which Nix 2.8 computes at any depth, may lift it.
   */
  constructor(sink: (chunk: Uint8Array) => void, options: { lendBuffer?: boolean; maxDepth?: number } = {}) {
    this.#sink = sink;
    this.#lend = options.lendBuffer === true;
    this.#maxDepth = options.maxDepth ?? NAR_MAX_DEPTH;
    this.#put(TOK_NAR);
  }

  /** Bytes of NAR emitted so far, buffered ones included; after `finish()` the NarSize. */
  get bytesWritten(): number {
    return this.#written + this.#used;
  }

  /** Describes the pending node as a regular file of `size` bytes; follow with `contents()` (unless 0). */
  regular(executable: boolean, size: number | bigint): void {
    this.#expect('node', 'regular()');
    const n = checkSize(size);
    this.#put(executable ? TOK_EXE : TOK_REG);
    this.#putU64(n);
    this.#fileSize = n;
    this.#remaining = n;
    if (n === 0) this.#endFile();
    else this.#state = 'contents';
  }

  /** Part of the current file's contents; the file closes itself once `size` bytes were given. */
  contents(chunk: Uint8Array): void {
    this.#expect('contents', 'contents()');
    if (chunk.length > this.#remaining) {
      throw new TypeError(
        `NarEncoder.contents(): ${chunk.length} bytes given but only ${this.#remaining} of ${this.#fileSize} remain`,
      );
    }
    if (chunk.length === 0) return;
    if (chunk.length < PASS_THROUGH) {
      this.#put(chunk);
    } else {
      this.#flush();
      this.#written += chunk.length;
      this.#sink(chunk);
    }
    this.#remaining -= chunk.length;
    if (this.#remaining === 0) this.#endFile();
  }

  /** Describes the pending node as a symlink. */
  symlink(target: Uint8Array | string): void {
    this.#expect('node', 'symlink()');
    const bytes = toBytes(target);
    const why = invalidTargetReason(bytes);
    if (why !== undefined) throw new TypeError(`NarEncoder.symlink(): invalid symlink target (${why})`);
    this.#put(TOK_SYM);
    this.#putStr(bytes);
    this.#put(TOK_PAR);
    this.#nodeDone();
  }

  /** Describes the pending node as a directory; add entries with `entry()`, close with `end()`. */
  directory(): void {
    this.#expect('node', 'directory()');
    this.#put(TOK_DIR);
    this.#dirs.push(null);
    this.#state = 'directory';
  }

  /** Opens an entry of the current directory; the next call describes its node. */
  entry(name: Uint8Array | string): void {
    this.#expect('directory', 'entry()');
    const bytes = toBytes(name);
    const why = invalidNameReason(bytes);
    if (why !== undefined) throw new TypeError(`NarEncoder.entry(): invalid file name (${why})`);
    const top = this.#dirs.length - 1;
    const prev = this.#dirs[top];
    if (prev != null && compareBytes(prev, bytes) >= 0) {
      throw new TypeError('NarEncoder.entry(): names must be strictly increasing bytewise (sort them first)');
    }
    if (this.#dirs.length >= this.#maxDepth) {
      throw new TypeError(`NarEncoder.entry(): directory nesting exceeds maximum depth of ${this.#maxDepth}`);
    }
    this.#dirs[top] = bytes.slice();
    this.#put(TOK_ENT);
    this.#putStr(bytes);
    this.#put(TOK_NOD);
    this.#state = 'node';
  }

  /** Closes the current directory. */
  end(): void {
    this.#expect('directory', 'end()');
    this.#put(TOK_PAR);
    this.#dirs.pop();
    this.#nodeDone();
  }

  /** Asserts the root node is complete and flushes the last bytes; calling it again is a no-op. */
  finish(): void {
    if (this.#state === 'finished') return;
    this.#expect('done', 'finish()');
    this.#flush();
    this.#state = 'finished';
  }

  #expect(state: State, what: string): void {
    if (this.#state !== state) {
      throw new TypeError(`NarEncoder.${what} called while ${describe(this.#state)}`);
    }
  }

  #endFile(): void {
    this.#putZeros(padLen(this.#fileSize));
    this.#put(TOK_PAR);
    this.#nodeDone();
  }

  /** A node finished: close the entry holding it, or the archive at the root. */
  #nodeDone(): void {
    if (this.#dirs.length === 0) {
      this.#state = 'done';
    } else {
      this.#put(TOK_PAR);
      this.#state = 'directory';
    }
  }

  #room(n: number): void {
    if (this.#used + n > BUFFER_SIZE) this.#flush();
  }

  #put(bytes: Uint8Array): void {
    this.#room(bytes.length);
    this.#buf.set(bytes, this.#used);
    this.#used += bytes.length;
  }

  #putU64(n: number): void {
    this.#room(8);
    writeU64(this.#buf, this.#used, n);
    this.#used += 8;
  }

  #putZeros(n: number): void {
    this.#room(n);
    this.#buf.fill(0, this.#used, this.#used + n);
    this.#used += n;
  }

  #putStr(bytes: Uint8Array): void {
    this.#putU64(bytes.length);
    this.#put(bytes);
    this.#putZeros(padLen(bytes.length));
  }

  /** The sink gets a copy, so the buffer can be reused at once. */
  #flush(): void {
    if (this.#used === 0) return;
    const chunk = this.#lend ? this.#buf.subarray(0, this.#used) : this.#buf.slice(0, this.#used);
    this.#written += this.#used;
    this.#used = 0;
    this.#sink(chunk);
  }
}

function describe(state: State): string {
  switch (state) {
    case 'node':
      return 'a node description (regular/symlink/directory) is expected';
    case 'contents':
      return 'file contents are expected';
    case 'directory':
      return 'inside a directory (entry/end expected)';
    case 'done':
      return 'the root node is complete (only finish() is allowed)';
    case 'finished':
      return 'the NAR is finished';
  }
}

function checkSize(size: number | bigint): number {
  const n = typeof size === 'bigint' ? Number(size) : size;
  if (!Number.isSafeInteger(n) || n < 0 || (typeof size === 'bigint' && BigInt(n) !== size)) {
    throw new TypeError(`NarEncoder.regular(): size must be an integer in [0, 2^53), got ${size}`);
  }
  return n;
}

/** A small in-memory tree, for tests and tiny NARs. */
export type NarTree =
  | { type: 'regular'; executable?: boolean; contents: Uint8Array }
  | { type: 'symlink'; target: Uint8Array | string }
  | {
      type: 'directory';
      entries: Readonly<Record<string, NarTree>> | ReadonlyMap<string | Uint8Array, NarTree>;
    };

/** Entries of a tree directory as (name bytes, node), sorted bytewise. */
export function sortedEntries(tree: Extract<NarTree, { type: 'directory' }>): [Uint8Array, NarTree][] {
  const list: [Uint8Array, NarTree][] =
    tree.entries instanceof Map
      ? [...tree.entries].map(([k, v]) => [toBytes(k), v])
      : Object.entries(tree.entries).map(([k, v]) => [toBytes(k), v]);
  return list.sort((a, b) => compareBytes(a[0], b[0]));
}

/** Describes `tree` to `enc` depth first, entries sorted bytewise. */
export function writeNarTree(enc: NarEncoder, tree: NarTree): void {
  switch (tree.type) {
    case 'regular':
      enc.regular(tree.executable === true, tree.contents.length);
      if (tree.contents.length > 0) enc.contents(tree.contents);
      return;
    case 'symlink':
      enc.symlink(tree.target);
      return;
    case 'directory':
      enc.directory();
      for (const [name, child] of sortedEntries(tree)) {
        enc.entry(name);
        writeNarTree(enc, child);
      }
      enc.end();
      return;
  }
}

/** The whole NAR of a small in-memory tree. */
export function encodeNar(tree: NarTree): Uint8Array {
  const chunks: Uint8Array[] = [];
  const enc = new NarEncoder((c) => chunks.push(c));
  writeNarTree(enc, tree);
  enc.finish();
  const out = new Uint8Array(enc.bytesWritten);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/*
 * NAR size is a pure function of metadata (as snix's NAR calculation uses): these give
 * the bytes each node contributes after its leading `"(" "type"` (which belongs
 * to the archive header or the enclosing entry), so a renderer can compute
 * NarSize without reading blobs.
 */

/** The archive header `"nix-archive-1" "(" "type"`. */
export const NAR_HEADER_SIZE = 56;

export function regularNodeSize(executable: boolean, size: number): number {
  return (executable ? 64 : 32) + 8 + padded(size) + 16;
}

export function symlinkNodeSize(targetLength: number): number {
  return 32 + 8 + padded(targetLength) + 16;
}

/** A directory node with no entries; add `directoryEntrySize` per entry. */
export const EMPTY_DIRECTORY_NODE_SIZE = 24 + 16;

export function directoryEntrySize(nameLength: number, childNodeSize: number): number {
  return 48 + 8 + padded(nameLength) + 48 + childNodeSize + 16;
}

/** NarSize of an in-memory tree, without encoding it. */
export function narSize(tree: NarTree): number {
  const node = (t: NarTree): number => {
    switch (t.type) {
      case 'regular':
        return regularNodeSize(t.executable === true, t.contents.length);
      case 'symlink':
        return symlinkNodeSize(toBytes(t.target).length);
      case 'directory':
        return sortedEntries(t).reduce(
          (n, [name, child]) => n + directoryEntrySize(name.length, node(child)),
          EMPTY_DIRECTORY_NODE_SIZE,
        );
    }
  };
  return NAR_HEADER_SIZE + node(tree);
}
