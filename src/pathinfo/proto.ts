/**
 * `PathInfo` ⇄ `snix.store.v1.PathInfo` protobuf bytes (snix
 * `store/protos/pathinfo.proto`, docs/formats.md §10), the value format of the path-info store and of snix's redb backend:
 *
 *   message PathInfo  { castore.v1.Entry entry = 1;     // name = "<nix32 digest>-<name>"
 *                       repeated bytes references = 2;  // raw 20-byte digests
 *                       NARInfo narinfo = 3; }
 *   message NARInfo   { uint64 nar_size = 1; bytes nar_sha256 = 2;
 *                       repeated Signature signatures = 3;    // { string name = 1; bytes data = 2; }
 *                       repeated string reference_names = 4;  // basenames, parallel to references
 *                       StorePath deriver = 5;                // { string name = 1 (no ".drv"); bytes digest = 2; }
 *                       CA ca = 6; }                          // { Hash type = 1; bytes digest = 2; }
 *
 * Encoding is what prost emits: fields in number order, defaults omitted
 * (nar_size 0, CA type NAR_SHA256), messages always written when present.
 * Decoding follows prost (unknown fields skipped, last scalar wins, repeated
 * singular messages merge — done here by concatenating their payloads, which
 * is protobuf's definition of merging) and then validates as snix's
 * `TryFrom<proto::PathInfo>` does. Every decoding failure is ERR_BAD_NARINFO
 * ("not a valid path info"), with the specific error as `cause` where there is
 * one; callers reading their own store turn that into ERR_INTEGRITY.
 *
 * Our `PathInfo` keeps signatures as narinfo `name:base64` text and the
 * deriver as the `.drv` store path; both are converted here. Git content
 * addresses and text hashes other than sha256 have no proto representation
 * and are refused with ERR_BAD_CA.
 */

import { bytesEqual, utf8 } from '../castore/bytes.js';
import { decodeEntry, encodeEntry, nodeProblem } from '../castore/nodes.js';
import { ProtoReader, ProtoWriter, WIRE_LEN, WIRE_VARINT } from '../castore/proto.js';
import { type ErrorCode, FetchCacheError, isFetchCacheError } from '../errors.js';
import type { ContentAddress, ContentAddressMethod } from '../nix/content-address.js';
import { HASH_SIZE, type HashAlgo } from '../nix/hashing.js';
import { formatSignature, parseSignature } from '../nix/signing.js';
import {
  parseStorePathBaseName,
  STORE_PATH_DIGEST_BYTES,
  type StorePath,
  storePathBaseName,
  validateStorePathName,
} from '../nix/store-path.js';
import type { PathInfo } from './path-info.js';

const NAR_SHA256_LEN = 32;
const SIGNATURE_LEN = 64;
const DRV = '.drv';

/** `NARInfo.CA.Hash`, indexed by enum value. */
const CA_KINDS: readonly (readonly [ContentAddressMethod, HashAlgo])[] = [
  ['nar', 'sha256'],
  ['nar', 'sha1'],
  ['nar', 'sha512'],
  ['nar', 'md5'],
  ['text', 'sha256'],
  ['flat', 'sha1'],
  ['flat', 'md5'],
  ['flat', 'sha256'],
  ['flat', 'sha512'],
];

function caKind(ca: ContentAddress): number {
  const i = CA_KINDS.findIndex(([m, a]) => m === ca.method && a === ca.hash.algo);
  if (i < 0) {
    throw new FetchCacheError(
      'ERR_BAD_CA',
      `content address ${ca.method}:${ca.hash.algo} has no snix PathInfo representation`,
      { actual: `${ca.method}:${ca.hash.algo}` },
    );
  }
  return i;
}

function fail(code: ErrorCode, message: string, actual?: string): never {
  throw new FetchCacheError(code, message, actual === undefined ? {} : { actual });
}

function checkStorePath(sp: StorePath, what: string): void {
  if (!(sp.digest instanceof Uint8Array) || sp.digest.length !== STORE_PATH_DIGEST_BYTES) {
    fail('ERR_BAD_STORE_PATH', `${what} digest is not ${STORE_PATH_DIGEST_BYTES} bytes`);
  }
  validateStorePathName(sp.name);
}

/** The deriver's name as the proto stores it: without `.drv`, itself a valid store path name. */
function deriverProtoName(deriver: StorePath): string {
  if (!deriver.name.endsWith(DRV))
    fail('ERR_BAD_STORE_PATH', 'deriver name does not end in ".drv"', deriver.name);
  const name = deriver.name.slice(0, -DRV.length);
  validateStorePathName(name);
  return name;
}

/**
 * Throws unless `info` can be stored: store paths (ERR_BAD_STORE_PATH), root
 * node (ERR_BAD_NODE), NAR hash and size (ERR_BAD_HASH, ERR_BAD_NARINFO),
 * signatures (ERR_BAD_SIGNATURE), content address (ERR_BAD_CA).
 */
export function validatePathInfo(info: PathInfo): void {
  checkStorePath(info.storePath, 'store path');
  const p = nodeProblem(info.node);
  if (p !== undefined) fail('ERR_BAD_NODE', `invalid root node: ${p}`);
  for (const ref of info.references) checkStorePath(ref, 'reference');
  if (!(info.narSha256 instanceof Uint8Array) || info.narSha256.length !== NAR_SHA256_LEN) {
    fail('ERR_BAD_HASH', `NAR sha256 is not ${NAR_SHA256_LEN} bytes`);
  }
  if (!Number.isSafeInteger(info.narSize) || info.narSize < 0) {
    fail('ERR_BAD_NARINFO', `NAR size ${info.narSize} is not an integer in [0, 2^53-1]`);
  }
  for (const sig of info.signatures) parseSignature(sig);
  if (info.deriver !== undefined) {
    checkStorePath(info.deriver, 'deriver');
    deriverProtoName(info.deriver);
  }
  if (info.ca !== undefined) {
    caKind(info.ca);
    if (info.ca.hash.digest.length !== HASH_SIZE[info.ca.hash.algo]) {
      fail('ERR_BAD_CA', `content address ${info.ca.hash.algo} digest has the wrong length`);
    }
  }
}

/** The `snix.store.v1.PathInfo` bytes of `info` (validated first, see `validatePathInfo`). */
export function encodePathInfo(info: PathInfo): Uint8Array {
  validatePathInfo(info);
  const narinfo = new ProtoWriter();
  if (info.narSize !== 0) narinfo.varintField(1, info.narSize);
  narinfo.bytesField(2, info.narSha256);
  for (const text of info.signatures) {
    const { keyName, sig } = parseSignature(text);
    narinfo.bytesField(3, new ProtoWriter().bytesField(1, utf8(keyName)).bytesField(2, sig).finish());
  }
  for (const ref of info.references) narinfo.bytesField(4, utf8(storePathBaseName(ref)));
  if (info.deriver !== undefined) {
    const sp = new ProtoWriter().bytesField(1, utf8(deriverProtoName(info.deriver)));
    narinfo.bytesField(5, sp.bytesField(2, info.deriver.digest).finish());
  }
  if (info.ca !== undefined) {
    const ca = new ProtoWriter();
    const kind = caKind(info.ca);
    if (kind !== 0) ca.varintField(1, kind);
    narinfo.bytesField(6, ca.bytesField(2, info.ca.hash.digest).finish());
  }
  const w = new ProtoWriter();
  w.bytesField(1, encodeEntry(utf8(storePathBaseName(info.storePath)), info.node));
  for (const ref of info.references) w.bytesField(2, ref.digest);
  w.bytesField(3, narinfo.finish());
  return w.finish();
}

const CODE: ErrorCode = 'ERR_BAD_NARINFO';
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function invalid(message: string, cause?: unknown): never {
  throw new FetchCacheError(CODE, `invalid PathInfo: ${message}`, cause === undefined ? {} : { cause });
}

/** Runs `f`, turning our own errors into ERR_BAD_NARINFO about `what`. */
function guard<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (!isFetchCacheError(e) || e.code === CODE) throw e;
    return invalid(`${what}: ${e.message}`, e);
  }
}

function text(bytes: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return invalid(`${what} is not valid UTF-8`);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  return new Uint8Array(Buffer.concat(parts));
}

/** Reads a message's fields, calling `field` for each; the reader must consume the value of any field it handles. */
function readFields(bytes: Uint8Array, field: (r: ProtoReader, n: number, wire: number) => boolean): void {
  const r = new ProtoReader(bytes, CODE);
  for (let k = r.key(); k !== undefined; k = r.key()) {
    if (!field(r, k.field, k.wireType)) r.skip(k);
  }
}

function lenField(r: ProtoReader, wire: number): Uint8Array {
  if (wire !== WIRE_LEN) r.fail(`length-delimited field has wire type ${wire}`);
  return r.lengthDelimited();
}

function varintField(r: ProtoReader, wire: number): number {
  if (wire !== WIRE_VARINT) r.fail(`varint field has wire type ${wire}`);
  return r.varint();
}

/** Decodes and validates `snix.store.v1.PathInfo` bytes (ERR_BAD_NARINFO on any failure). */
export function decodePathInfo(bytes: Uint8Array): PathInfo {
  // A plain view, so that `slice()` copies even when given a Buffer (whose `slice` does not).
  const input = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entryParts: Uint8Array[] = [];
  const references: Uint8Array[] = [];
  const narinfoParts: Uint8Array[] = [];
  readFields(input, (r, n, wire) => {
    if (n === 1) entryParts.push(lenField(r, wire));
    else if (n === 2) references.push(lenField(r, wire).slice());
    else if (n === 3) narinfoParts.push(lenField(r, wire));
    else return false;
    return true;
  });
  if (narinfoParts.length === 0) invalid('narinfo field is not set');
  if (entryParts.length === 0) invalid('entry field is not set');

  let narSize = 0;
  let narSha256 = new Uint8Array(0);
  const sigParts: Uint8Array[] = [];
  const referenceNames: string[] = [];
  const deriverParts: Uint8Array[] = [];
  const caParts: Uint8Array[] = [];
  readFields(concat(narinfoParts), (r, n, wire) => {
    if (n === 1) narSize = varintField(r, wire);
    else if (n === 2) narSha256 = lenField(r, wire).slice();
    else if (n === 3) sigParts.push(lenField(r, wire));
    else if (n === 4) referenceNames.push(text(lenField(r, wire), 'reference name'));
    else if (n === 5) deriverParts.push(lenField(r, wire));
    else if (n === 6) caParts.push(lenField(r, wire));
    else return false;
    return true;
  });

  const entry = guard('invalid entry', () => decodeEntry(concat(entryParts)));
  const storePath = guard('entry name is not a store path', () =>
    parseStorePathBaseName(text(entry.name, 'entry name')),
  );
  if (referenceNames.length !== references.length) {
    invalid(`${references.length} references but ${referenceNames.length} reference names`);
  }
  const refs = references.map((digest, i) => {
    if (digest.length !== STORE_PATH_DIGEST_BYTES)
      invalid(`reference ${i} is not ${STORE_PATH_DIGEST_BYTES} bytes`);
    const sp = guard(`reference name ${i}`, () => parseStorePathBaseName(referenceNames[i]!));
    if (!bytesEqual(sp.digest, digest)) invalid(`reference name ${i} does not match reference digest ${i}`);
    return sp;
  });
  if (!Number.isSafeInteger(narSize)) invalid('nar_size exceeds 2^53-1');
  if (narSha256.length !== NAR_SHA256_LEN) invalid(`nar_sha256 is ${narSha256.length} bytes, expected 32`);
  const signatures = sigParts.map(decodeSignature);
  const info: PathInfo = { storePath, node: entry.node, references: refs, narSha256, narSize, signatures };
  const deriver = deriverParts.length > 0 ? decodeDeriver(concat(deriverParts)) : undefined;
  const ca = caParts.length > 0 ? decodeCa(concat(caParts)) : undefined;
  return {
    ...info,
    ...(deriver === undefined ? {} : { deriver }),
    ...(ca === undefined ? {} : { ca }),
  };
}

function decodeSignature(bytes: Uint8Array): string {
  let name = '';
  let data = new Uint8Array(0);
  readFields(bytes, (r, n, wire) => {
    if (n === 1) name = text(lenField(r, wire), 'signature name');
    else if (n === 2) data = lenField(r, wire).slice();
    else return false;
    return true;
  });
  // The name must survive the round trip through `name:base64` text.
  if (name === '' || /[\s:]/.test(name)) invalid(`signature name ${JSON.stringify(name)} is not a key name`);
  if (data.length !== SIGNATURE_LEN) invalid(`signature is ${data.length} bytes, expected ${SIGNATURE_LEN}`);
  return formatSignature({ keyName: name, sig: data });
}

function decodeDeriver(bytes: Uint8Array): StorePath {
  let name = '';
  let digest = new Uint8Array(0);
  readFields(bytes, (r, n, wire) => {
    if (n === 1) name = text(lenField(r, wire), 'deriver name');
    else if (n === 2) digest = lenField(r, wire).slice();
    else return false;
    return true;
  });
  if (digest.length !== STORE_PATH_DIGEST_BYTES)
    invalid(`deriver digest is not ${STORE_PATH_DIGEST_BYTES} bytes`);
  guard('deriver', () => {
    validateStorePathName(name);
    validateStorePathName(name + DRV);
  });
  return { digest, name: name + DRV };
}

function decodeCa(bytes: Uint8Array): ContentAddress {
  let kind = 0;
  let digest = new Uint8Array(0);
  readFields(bytes, (r, n, wire) => {
    if (n === 1) kind = varintField(r, wire);
    else if (n === 2) digest = lenField(r, wire).slice();
    else return false;
    return true;
  });
  const k = CA_KINDS[kind];
  if (k === undefined) invalid(`unknown content address type ${kind}`);
  const [method, algo] = k;
  if (digest.length !== HASH_SIZE[algo]) {
    invalid(`content address ${algo} digest is ${digest.length} bytes, expected ${HASH_SIZE[algo]}`);
  }
  return { method, hash: { algo, digest } };
}
