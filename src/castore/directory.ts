/**
 * One directory level of castore (snix `castore/src/directory.rs` and
 * `proto/mod.rs`): named nodes, unique by name, ordered bytewise by name
 * across all three kinds. A `Directory` is immutable once built and is always
 * valid; its digest is BLAKE3 of its canonical protobuf encoding:
 *
 *   message Directory { repeated DirectoryEntry directories = 1; repeated FileEntry files = 2;
 *                       repeated SymlinkEntry symlinks = 3; }
 *
 * Canonical = what prost emits: all directories, then all files, then all
 * symlinks, each list sorted by name bytes, default values omitted.
 *
 * Size (entry count for inode numbering, and part of the parent's digest)
 * follows current snix: each file or symlink counts 1, each subdirectory
 * counts 2 + its own recorded size. (snix's proto docs and older Rust code
 * used other formulas; they give different digests for nested directories.)
 *
 * Decoding accepts what prost accepts (unknown fields skipped, fields in any
 * order, non-minimal varints, last value wins for repeated scalars) and then
 * validates as snix does. Such input re-encodes to different, canonical bytes,
 * so callers that address stored bytes by their BLAKE3 pass
 * `{ canonical: true }` to reject anything that does not re-encode byte-identically.
 */

import { FetchCacheError } from '../errors.js';
import { blake3 } from '../nix/hashing.js';
import { compareBytes, copyBytes, displayBytes, utf8 } from './bytes.js';
import type { B3Digest } from './digest.js';
import {
  type DirectoryNode,
  emptyRawEntry,
  type NamedNode,
  type Node,
  type NodeType,
  nameProblem,
  nodeProblem,
  type RawEntry,
  rawToNode,
  readEntryMessage,
  writeEntryField,
} from './nodes.js';
import { ProtoReader, ProtoWriter, WIRE_LEN } from './proto.js';

export type DirectoryEntryInput = readonly [name: Uint8Array | string, node: Node] | NamedNode;

export interface DecodeDirectoryOptions {
  /** Reject input that does not re-encode to the very same bytes. */
  canonical?: boolean;
}

const ENCODING_ORDER: readonly NodeType[] = ['directory', 'file', 'symlink'];

function bad(message: string, name?: Uint8Array): never {
  const fields = name === undefined ? {} : { path: displayBytes(name) };
  throw new FetchCacheError('ERR_BAD_DIRECTORY', `invalid directory: ${message}`, fields);
}

function byName(a: NamedNode, b: NamedNode): number {
  return compareBytes(a.name, b.name);
}

/**
 * A castore directory (snix `Directory`): named nodes sorted by name, with its canonical protobuf encoding
 * and digest.
 */
export class Directory implements Iterable<NamedNode> {
  static readonly EMPTY: Directory = new Directory([]);

  /** Entries sorted bytewise by name, across kinds. */
  private readonly sorted: readonly NamedNode[];
  /** The snix size: files and symlinks count 1, subdirectories 2 + their size. */
  readonly size: number;
  private encoded: Uint8Array | undefined;
  private digestCache: B3Digest | undefined;

  /** `sorted` must already be validated, sorted and free of duplicates. */
  private constructor(sorted: readonly NamedNode[]) {
    this.sorted = sorted;
    let size = 0;
    for (const { name, node } of sorted) {
      size += node.type === 'directory' ? 2 + node.size : 1;
      if (size > Number.MAX_SAFE_INTEGER) bad('size overflow', name);
    }
    this.size = size;
  }

  /**
   * Builds a directory from named nodes in any order. Names and nodes are
   * validated and copied; a repeated name throws ERR_BAD_DIRECTORY.
   */
  static fromEntries(entries: Iterable<DirectoryEntryInput>): Directory {
    const list: NamedNode[] = [];
    for (const e of entries) {
      const [rawName, node] = 'node' in e ? [e.name, e.node] : e;
      const name = typeof rawName === 'string' ? utf8(rawName) : copyBytes(rawName);
      const problem = nameProblem(name) ?? nodeProblem(node);
      if (problem !== undefined) bad(problem, name);
      list.push(Object.freeze({ name, node: Object.freeze(copyNode(node)) }));
    }
    return Directory.fromUnsorted(list);
  }

  private static fromUnsorted(list: NamedNode[]): Directory {
    list.sort(byName);
    for (let i = 1; i < list.length; i++) {
      if (compareBytes(list[i - 1]!.name, list[i]!.name) === 0) bad('duplicate name', list[i]!.name);
    }
    return list.length === 0 ? Directory.EMPTY : new Directory(Object.freeze(list));
  }

  /** Decodes and validates a `Directory` message (ERR_BAD_DIRECTORY on any failure). */
  static decode(bytes: Uint8Array, options: DecodeDirectoryOptions = {}): Directory {
    const r = new ProtoReader(bytes, 'ERR_BAD_DIRECTORY');
    const lists: Record<NodeType, RawEntry[]> = { directory: [], file: [], symlink: [] };
    for (let k = r.key(); k !== undefined; k = r.key()) {
      const type = ENCODING_ORDER[k.field - 1];
      if (type === undefined) {
        r.skip(k);
        continue;
      }
      r.expectWireType(k, WIRE_LEN);
      lists[type].push(readEntryMessage(r.message(), emptyRawEntry(type)));
    }
    const all: NamedNode[] = [];
    for (const type of ENCODING_ORDER) {
      let prev: Uint8Array | undefined;
      for (const raw of lists[type]) {
        if (prev !== undefined) {
          const c = compareBytes(raw.name, prev);
          if (c < 0) bad(`${type} entries are not sorted`, raw.name);
          if (c === 0) bad('duplicate name', raw.name);
        }
        prev = raw.name;
        const p = nameProblem(raw.name);
        if (p !== undefined) bad(p, raw.name);
        all.push(Object.freeze({ name: raw.name, node: rawToNode(raw, 'ERR_BAD_DIRECTORY') }));
      }
    }
    const dir = Directory.fromUnsorted(all);
    if (options.canonical) {
      const enc = dir.encodeCached();
      if (compareBytes(enc, bytes) !== 0) bad('non-canonical encoding');
    }
    return dir;
  }

  /** Number of entries (not the snix size). */
  get count(): number {
    return this.sorted.length;
  }

  /** Entries in bytewise name order across all kinds (the NAR order). */
  entries(): IterableIterator<NamedNode> {
    return this.sorted.values();
  }

  [Symbol.iterator](): IterableIterator<NamedNode> {
    return this.sorted.values();
  }

  /** Entries of one kind, in name order. */
  *ofType(type: NodeType): IterableIterator<NamedNode> {
    for (const e of this.sorted) if (e.node.type === type) yield e;
  }

  get(name: Uint8Array | string): Node | undefined {
    const key = typeof name === 'string' ? utf8(name) : name;
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.sorted[mid]!;
      const c = compareBytes(e.name, key);
      if (c === 0) return e.node;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  has(name: Uint8Array | string): boolean {
    return this.get(name) !== undefined;
  }

  private encodeCached(): Uint8Array {
    if (this.encoded === undefined) {
      const w = new ProtoWriter();
      for (const type of ENCODING_ORDER) {
        for (const { name, node } of this.ofType(type)) writeEntryField(w, name, node);
      }
      this.encoded = w.finish();
    }
    return this.encoded;
  }

  /** The canonical protobuf encoding (a fresh copy). */
  encode(): Uint8Array {
    return this.encodeCached().slice();
  }

  /** BLAKE3 of the canonical encoding. */
  digest(): B3Digest {
    this.digestCache ??= blake3(this.encodeCached());
    return this.digestCache.slice();
  }

  /** The node a parent uses to refer to this directory. */
  toNode(): DirectoryNode {
    return Object.freeze({ type: 'directory', digest: this.digest(), size: this.size });
  }

  equals(other: Directory): boolean {
    return this === other || compareBytes(this.encodeCached(), other.encodeCached()) === 0;
  }
}

function copyNode(node: Node): Node {
  switch (node.type) {
    case 'directory':
      return { type: 'directory', digest: copyBytes(node.digest), size: node.size };
    case 'file':
      return { type: 'file', digest: copyBytes(node.digest), size: node.size, executable: node.executable };
    case 'symlink':
      return { type: 'symlink', target: copyBytes(node.target) };
  }
}

/** Builds a directory from named nodes in any order; see `Directory.fromEntries`. */
export function buildDirectory(entries: Iterable<DirectoryEntryInput>): Directory {
  return Directory.fromEntries(entries);
}

export function encodeDirectory(dir: Directory): Uint8Array {
  return dir.encode();
}

export function decodeDirectory(bytes: Uint8Array, options: DecodeDirectoryOptions = {}): Directory {
  return Directory.decode(bytes, options);
}

export function directoryDigest(dir: Directory): B3Digest {
  return dir.digest();
}

export function directorySize(dir: Directory): number {
  return dir.size;
}
