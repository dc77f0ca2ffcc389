/**
 * Castore nodes (snix `castore/src/nodes`): a directory (digest of its
 * Directory message + its size), a file (blob digest, byte size, executable
 * bit) or a symlink (target bytes). Nodes carry no name; a name is attached by
 * the Directory that holds them or by an `Entry`, the protobuf message used for
 * root nodes (PathInfo, nar-bridge URLs), where an empty name means
 * "anonymous":
 *
 *   message Entry { oneof entry { DirectoryEntry directory = 1; FileEntry file = 2; SymlinkEntry symlink = 3; } }
 *   message DirectoryEntry { bytes name = 1; bytes digest = 2; uint64 size = 3; }
 *   message FileEntry      { bytes name = 1; bytes digest = 2; uint64 size = 3; bool executable = 4; }
 *   message SymlinkEntry   { bytes name = 1; bytes target = 2; }
 *
 * Sizes are JS numbers limited to 2^53-1 (snix allows any u64); larger values
 * are rejected when decoding. Unknown fields inside entry messages are skipped
 * and repeated scalar fields keep the last value, as prost does.
 */

import type { ErrorCode } from '../errors.js';
import { FetchCacheError } from '../errors.js';
import { invalidNameReason, invalidTargetReason } from '../nix/nar/wire.js';
import { bytesEqual, copyBytes, displayBytes } from './bytes.js';
import { B3_LEN, type B3Digest } from './digest.js';
import { ProtoReader, ProtoWriter, WIRE_LEN, WIRE_VARINT } from './proto.js';

export type DirectoryNode = { readonly type: 'directory'; readonly digest: B3Digest; readonly size: number };
export type FileNode = {
  readonly type: 'file';
  readonly digest: B3Digest;
  readonly size: number;
  readonly executable: boolean;
};
export type SymlinkNode = { readonly type: 'symlink'; readonly target: Uint8Array };
/**
 * A castore node: a directory (by digest and size), a file (by blob digest, size and executable bit) or a
 * symlink (its target).
 */
export type Node = DirectoryNode | FileNode | SymlinkNode;
export type NodeType = Node['type'];

/** A name with its node; the name is empty for an anonymous root node. */
export interface NamedNode {
  readonly name: Uint8Array;
  readonly node: Node;
}

export const MAX_NAME_LEN = 255;
export const MAX_TARGET_LEN = 4095;

/** Field numbers of the `Entry` oneof, which are also the list field numbers of `Directory`. */
export const ENTRY_FIELD: Readonly<Record<NodeType, number>> = { directory: 1, file: 2, symlink: 3 };

/** Why `name` is not a valid path component (snix `PathComponent`, the NAR name rules), or undefined. */
export function nameProblem(name: Uint8Array): string | undefined {
  const reason = invalidNameReason(name);
  return reason === undefined ? undefined : `bad name (${reason})`;
}

/** Why `target` is not a valid symlink target (snix `SymlinkTarget`, the NAR rules), or undefined. */
export function targetProblem(target: Uint8Array): string | undefined {
  const reason = invalidTargetReason(target);
  return reason === undefined ? undefined : `bad symlink target (${reason})`;
}

function sizeProblem(size: number): string | undefined {
  return Number.isSafeInteger(size) && size >= 0
    ? undefined
    : `size ${size} is not an integer in [0, 2^53-1]`;
}

/** Why `node` is invalid (digest length, size range, target rules), or undefined. */
export function nodeProblem(node: Node): string | undefined {
  if (node.type === 'symlink') return targetProblem(node.target);
  if (node.digest.length !== B3_LEN) return `digest is ${node.digest.length} bytes, expected ${B3_LEN}`;
  return sizeProblem(node.size);
}

function fail(code: ErrorCode, problem: string, name?: Uint8Array): never {
  const fields = name === undefined ? {} : { path: displayBytes(name) };
  throw new FetchCacheError(
    code,
    `invalid ${code === 'ERR_BAD_NODE' ? 'node' : 'directory'}: ${problem}`,
    fields,
  );
}

/** Throws ERR_BAD_DIRECTORY unless `name` is 1–255 bytes, has no `/` or NUL and is not `.` or `..`. */
export function validateName(name: Uint8Array): void {
  const p = nameProblem(name);
  if (p !== undefined) fail('ERR_BAD_DIRECTORY', p, name);
}

/** Throws ERR_BAD_NODE unless `target` is 1–4095 bytes without NUL. */
export function validateSymlinkTarget(target: Uint8Array): void {
  const p = targetProblem(target);
  if (p !== undefined) fail('ERR_BAD_NODE', p);
}

/** Throws ERR_BAD_NODE if `node` is invalid. */
export function validateNode(node: Node): void {
  const p = nodeProblem(node);
  if (p !== undefined) fail('ERR_BAD_NODE', p);
}

/** Validated, frozen node constructors; they copy their byte arguments. */
export function directoryNode(digest: B3Digest, size: number): DirectoryNode {
  const node: DirectoryNode = { type: 'directory', digest: copyBytes(digest), size };
  validateNode(node);
  return Object.freeze(node);
}

export function fileNode(digest: B3Digest, size: number, executable = false): FileNode {
  const node: FileNode = { type: 'file', digest: copyBytes(digest), size, executable };
  validateNode(node);
  return Object.freeze(node);
}

export function symlinkNode(target: Uint8Array | string): SymlinkNode {
  const bytes = typeof target === 'string' ? new TextEncoder().encode(target) : copyBytes(target);
  const node: SymlinkNode = { type: 'symlink', target: bytes };
  validateNode(node);
  return Object.freeze(node);
}

export function nodeEquals(a: Node, b: Node): boolean {
  switch (a.type) {
    case 'directory':
      return b.type === 'directory' && a.size === b.size && bytesEqual(a.digest, b.digest);
    case 'file':
      return (
        b.type === 'file' &&
        a.size === b.size &&
        a.executable === b.executable &&
        bytesEqual(a.digest, b.digest)
      );
    case 'symlink':
      return b.type === 'symlink' && bytesEqual(a.target, b.target);
  }
}

/**
 * Appends `name`/`node` as the length-delimited field `ENTRY_FIELD[type]`:
 * the Entry oneof member and, identically, one element of a Directory list.
 * Defaults (empty name, size 0, executable false) are omitted, as prost does.
 */
export function writeEntryField(w: ProtoWriter, name: Uint8Array, node: Node): void {
  const inner = new ProtoWriter();
  if (name.length > 0) inner.bytesField(1, name);
  if (node.type === 'symlink') {
    if (node.target.length > 0) inner.bytesField(2, node.target);
  } else {
    if (node.digest.length > 0) inner.bytesField(2, node.digest);
    if (node.size !== 0) inner.varintField(3, node.size);
    if (node.type === 'file' && node.executable) inner.varintField(4, 1);
  }
  w.bytesField(ENTRY_FIELD[node.type], inner.finish());
}

/** The `Entry` message for a root node; pass an empty name for an anonymous one. */
export function encodeEntry(name: Uint8Array, node: Node): Uint8Array {
  const w = new ProtoWriter();
  writeEntryField(w, name, node);
  return w.finish();
}

/** An entry message's fields as found on the wire, before validation. */
export interface RawEntry {
  type: NodeType;
  name: Uint8Array;
  digest: Uint8Array;
  size: number;
  executable: boolean;
  target: Uint8Array;
}

export function emptyRawEntry(type: NodeType): RawEntry {
  const none = new Uint8Array(0);
  return { type, name: none, digest: none, size: 0, executable: false, target: none };
}

/** Merges the fields of one DirectoryEntry/FileEntry/SymlinkEntry message into `raw`. */
export function readEntryMessage(r: ProtoReader, raw: RawEntry): RawEntry {
  const isSymlink = raw.type === 'symlink';
  for (let k = r.key(); k !== undefined; k = r.key()) {
    if (k.field === 1 || k.field === 2) {
      r.expectWireType(k, WIRE_LEN);
      const value = copyBytes(r.lengthDelimited());
      if (k.field === 1) raw.name = value;
      else if (isSymlink) raw.target = value;
      else raw.digest = value;
    } else if (!isSymlink && (k.field === 3 || (k.field === 4 && raw.type === 'file'))) {
      r.expectWireType(k, WIRE_VARINT);
      const v = r.varint();
      if (k.field === 4) raw.executable = v !== 0;
      else if (!Number.isSafeInteger(v))
        r.fail('size exceeds 2^53-1, which fetch-cache does not support', k.offset);
      else raw.size = v;
    } else {
      r.skip(k);
    }
  }
  return raw;
}

/** Turns a raw entry into a node, throwing `code` if the node is invalid (the name is checked by the caller). */
export function rawToNode(raw: RawEntry, code: ErrorCode): Node {
  const node: Node =
    raw.type === 'directory'
      ? { type: 'directory', digest: raw.digest, size: raw.size }
      : raw.type === 'file'
        ? { type: 'file', digest: raw.digest, size: raw.size, executable: raw.executable }
        : { type: 'symlink', target: raw.target };
  const p = nodeProblem(node);
  if (p !== undefined) fail(code, p, raw.name);
  return Object.freeze(node);
}

const TYPE_BY_FIELD: readonly (NodeType | undefined)[] = [undefined, 'directory', 'file', 'symlink'];

/**
 * Decodes an `Entry` (ERR_BAD_NODE on any failure). The name is either empty
 * (anonymous root node) or a valid path component. As in prost, when the
 * oneof appears more than once the last member wins, and a repeated member of
 * the same kind is merged field by field.
 */
export function decodeEntry(bytes: Uint8Array): NamedNode {
  const r = new ProtoReader(bytes, 'ERR_BAD_NODE');
  let raw: RawEntry | undefined;
  for (let k = r.key(); k !== undefined; k = r.key()) {
    const type = TYPE_BY_FIELD[k.field];
    if (type === undefined) {
      r.skip(k);
      continue;
    }
    r.expectWireType(k, WIRE_LEN);
    if (raw?.type !== type) raw = emptyRawEntry(type);
    readEntryMessage(r.message(), raw);
  }
  if (raw === undefined) fail('ERR_BAD_NODE', 'no entry set');
  const node = rawToNode(raw, 'ERR_BAD_NODE');
  if (raw.name.length > 0) {
    const p = nameProblem(raw.name);
    if (p !== undefined) fail('ERR_BAD_NODE', p, raw.name);
  }
  return { name: raw.name, node };
}

/** Decodes an `Entry` that must be anonymous (empty name), as nar-bridge URLs and CalculateNAR require. */
export function decodeAnonymousEntry(bytes: Uint8Array): Node {
  const { name, node } = decodeEntry(bytes);
  if (name.length > 0) fail('ERR_BAD_NODE', 'name in anonymous node', name);
  return node;
}
