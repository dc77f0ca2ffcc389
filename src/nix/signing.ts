/**
 * Nix's Ed25519 binary-cache keys and store-path signatures (docs/formats.md §8). Keys and
 * signatures are text `<name>:<base64>`: a secret key holds libsodium's 64-byte
 * layout (32-byte seed ‖ 32-byte public key), a public key 32 bytes, a signature
 * 64 bytes. What gets signed is the path fingerprint
 * `1;<storePath>;<narHash as sha256:nix32>;<narSize>;<refs joined by ','>`.
 * Verification looks the signature's key name up among the trusted keys, like
 * Nix's `verifyDetached`: an unknown name is "not signed", not an error.
 * Ed25519 itself comes from node:crypto (pure RFC 8032, deterministic).
 */

import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { FetchCacheError } from '../errors.js';
import { formatHash, fromBase64Lenient, type Hash, toBase64 } from './hash.js';
import { addSignatures, type NarInfo } from './narinfo.js';
import { DEFAULT_STORE_DIR, formatStorePath, parseStorePath } from './store-path.js';

/** An Ed25519 secret key with its name, as `nix-store --generate-binary-cache-key` writes it. */
export interface SecretKey {
  name: string;
  /** 64 bytes: Ed25519 seed ‖ public key (libsodium `crypto_sign_SECRETKEYBYTES`). */
  key: Uint8Array;
}

/** An Ed25519 public key with its name, as in Nix's `trusted-public-keys`. */
export interface PublicKey {
  name: string;
  /** 32 bytes. */
  key: Uint8Array;
}

export interface Signature {
  keyName: string;
  /** 64 bytes. */
  sig: Uint8Array;
}

export interface PathFingerprintInput {
  /** Full store path, e.g. `/nix/store/<hash>-<name>`. */
  storePath: string;
  narHash: Hash;
  narSize: number;
  /** Full store paths. */
  references: readonly string[];
}

export interface FingerprintOptions {
  /**
   * Keep the references in the given order instead of sorting them bytewise.
   * Only for legacy narinfos signed over unsorted References (docs/formats.md §8); C++
   * Nix always sorts.
   */
  keepReferenceOrder?: boolean;
}

// DER prefixes that wrap a raw 32-byte Ed25519 seed / public key (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function privateKeyObject(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(pub: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, pub]), format: 'der', type: 'spki' });
}

function rawPublicKeyOfSeed(seed: Uint8Array): Uint8Array {
  const der = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(SPKI_ED25519_PREFIX.length));
}

/** Split `<name>:<payload>` at the first colon; both parts must be non-empty (Nix `Key::Key`). */
function splitKeyText(text: string, what: string): { name: string; payload: string } {
  const colon = text.indexOf(':');
  const name = colon < 0 ? '' : text.slice(0, colon);
  const payload = colon < 0 ? '' : text.slice(colon + 1);
  if (name === '' || payload === '') {
    throw new FetchCacheError('ERR_BAD_KEY', `${what} is corrupt: expected '<name>:<base64>'`);
  }
  return { name, payload };
}

function decodeKeyPayload(name: string, payload: string, size: number, what: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Lenient(payload);
  } catch (cause) {
    throw new FetchCacheError('ERR_BAD_KEY', `${what} '${name}' is not valid base64`, { cause });
  }
  if (bytes.length !== size) {
    throw new FetchCacheError('ERR_BAD_KEY', `${what} '${name}' is not valid: expected ${size} bytes`, {
      expected: String(size),
      actual: String(bytes.length),
    });
  }
  return bytes;
}

/**
 * Parse a secret key file's text. The public half must belong to the seed:
 * libsodium would otherwise sign with a mismatched key and produce signatures
 * nobody can verify, so we refuse such a key up front (Nix does not check).
 */
export function parseSecretKey(text: string): SecretKey {
  const { name, payload } = splitKeyText(text, 'secret key');
  const key = decodeKeyPayload(name, payload, 64, 'secret key');
  const derived = rawPublicKeyOfSeed(key.subarray(0, 32));
  if (!Buffer.from(derived).equals(key.subarray(32))) {
    throw new FetchCacheError(
      'ERR_BAD_KEY',
      `secret key '${name}' is not valid: public half does not match seed`,
    );
  }
  return { name, key };
}

/** A public key from Nix's `name:base64` text. */
export function parsePublicKey(text: string): PublicKey {
  const { name, payload } = splitKeyText(text, 'public key');
  return { name, key: decodeKeyPayload(name, payload, 32, 'public key') };
}

/** `<name>:<base64>` without a trailing newline, as Nix 2.8 writes key files. */
export function formatSecretKey(key: SecretKey): string {
  return `${key.name}:${toBase64(key.key)}`;
}

/** A public key as Nix writes it: `name:base64`. */
export function formatPublicKey(key: PublicKey): string {
  return `${key.name}:${toBase64(key.key)}`;
}

/** The public key of a secret key: libsodium keeps it in the second half. */
export function publicKeyOf(secret: SecretKey): PublicKey {
  return { name: secret.name, key: secret.key.slice(32, 64) };
}

/** A fresh key pair, like `nix-store --generate-binary-cache-key <name>`. */
export function generateKeyPair(name: string): { secret: SecretKey; public: PublicKey } {
  if (name === '' || /[:\s]/.test(name)) {
    throw new FetchCacheError(
      'ERR_BAD_KEY',
      `key name '${name}' must be non-empty without ':' or whitespace`,
    );
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const seed = new Uint8Array(der.subarray(PKCS8_ED25519_PREFIX.length));
  const pub = rawPublicKeyOfSeed(seed);
  const key = new Uint8Array(64);
  key.set(seed, 0);
  key.set(pub, 32);
  const secret = { name, key };
  return { secret, public: publicKeyOf(secret) };
}

function compareBytewise(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The string Nix signs for a store path (`ValidPathInfo::fingerprint`, docs/formats.md §8). */
export function fingerprintPath(input: PathFingerprintInput, options: FingerprintOptions = {}): string {
  if (!Number.isSafeInteger(input.narSize) || input.narSize <= 0) {
    throw new FetchCacheError(
      'ERR_BAD_NARINFO',
      `cannot compute the fingerprint of '${input.storePath}': NarSize is unknown or zero`,
      { path: input.storePath },
    );
  }
  const refs = options.keepReferenceOrder
    ? [...input.references]
    : [...new Set(input.references)].sort(compareBytewise);
  const narHash = formatHash(input.narHash, 'nix32', { prefix: true });
  return `1;${input.storePath};${narHash};${input.narSize};${refs.join(',')}`;
}

/** The fingerprint of a parsed narinfo; its base-name References become full paths. */
export function narInfoFingerprint(
  info: Pick<NarInfo, 'storePath' | 'narHash' | 'narSize' | 'references'>,
  storeDir: string = DEFAULT_STORE_DIR,
  options: FingerprintOptions = {},
): string {
  const storePath = formatStorePath(parseStorePath(info.storePath, storeDir), storeDir);
  const references = info.references.map((base) => `${storeDir}/${base}`);
  return fingerprintPath({ storePath, narHash: info.narHash, narSize: info.narSize, references }, options);
}

/** Sign a fingerprint: `<keyname>:<base64 of the 64-byte Ed25519 signature>`. */
export function signFingerprint(secretKey: SecretKey, fingerprint: string): string {
  const sig = sign(null, Buffer.from(fingerprint, 'utf8'), privateKeyObject(secretKey.key.subarray(0, 32)));
  return `${secretKey.name}:${toBase64(sig)}`;
}

function badSignature(message: string, cause?: unknown): FetchCacheError {
  return new FetchCacheError('ERR_BAD_SIGNATURE', message, cause === undefined ? {} : { cause });
}

function decodeSignaturePayload(keyName: string, payload: string): Uint8Array {
  let sig: Uint8Array;
  try {
    sig = fromBase64Lenient(payload);
  } catch (cause) {
    throw badSignature(`signature by '${keyName}' is not valid base64`, cause);
  }
  if (sig.length !== 64) throw badSignature(`signature by '${keyName}' is not valid: expected 64 bytes`);
  return sig;
}

/**
 * Parse `<keyname>:<base64>` strictly: a non-empty key name without whitespace
 * (as nix-compat requires) and a 64-byte signature.
 */
export function parseSignature(text: string): Signature {
  const colon = text.indexOf(':');
  if (colon <= 0) throw badSignature("signature is corrupt: expected '<keyname>:<base64>'");
  const keyName = text.slice(0, colon);
  if (/\s/.test(keyName)) throw badSignature('signature is corrupt: key name contains whitespace');
  return { keyName, sig: decodeSignaturePayload(keyName, text.slice(colon + 1)) };
}

export function formatSignature(sig: Signature): string {
  return `${sig.keyName}:${toBase64(sig.sig)}`;
}

/**
 * Whether `sig` is a valid signature of `fingerprint` by one of `publicKeys`,
 * chosen by key name (Nix `verifyDetached`). A name no trusted key has ⇒ false.
 * Text that is not `<name>:<payload>`, or a payload of the wrong size under a
 * trusted name ⇒ ERR_BAD_SIGNATURE.
 */
export function verifySignature(publicKeys: Iterable<PublicKey>, fingerprint: string, sig: string): boolean {
  const colon = sig.indexOf(':');
  if (colon <= 0 || colon === sig.length - 1) {
    throw badSignature("signature is corrupt: expected '<keyname>:<base64>'");
  }
  const keyName = sig.slice(0, colon);
  let key: PublicKey | undefined;
  for (const k of publicKeys) {
    if (k.name === keyName) {
      key = k;
      break;
    }
  }
  if (key === undefined) return false;
  const raw = decodeSignaturePayload(keyName, sig.slice(colon + 1));
  return verify(null, Buffer.from(fingerprint, 'utf8'), publicKeyObject(key.key), raw);
}

/**
 * The key names of `info.sigs` that verify against `publicKeys`. Signatures by
 * keys not in `publicKeys` are ignored; a malformed one, or one of the wrong
 * size under a trusted name, throws ERR_BAD_SIGNATURE as in Nix.
 */
export function validNarInfoSigners(
  info: Pick<NarInfo, 'storePath' | 'narHash' | 'narSize' | 'references' | 'sigs'>,
  publicKeys: Iterable<PublicKey>,
  storeDir: string = DEFAULT_STORE_DIR,
): string[] {
  const keys = [...publicKeys];
  const fingerprint = narInfoFingerprint(info, storeDir);
  return info.sigs
    .filter((sig) => verifySignature(keys, fingerprint, sig))
    .map((sig) => sig.slice(0, sig.indexOf(':')));
}

/** Sign a parsed narinfo with each key and add the new `Sig` lines (see `addSignatures`). */
export function signNarInfo(
  info: NarInfo,
  secretKeys: readonly SecretKey[],
  storeDir: string = DEFAULT_STORE_DIR,
): NarInfo {
  const fingerprint = narInfoFingerprint(info, storeDir);
  return addSignatures(
    info,
    secretKeys.map((k) => signFingerprint(k, fingerprint)),
  );
}
