/**
 * The lockfile `pins.lock`: `{"pins": {<name>: {…}}, "version": 1}` as JSON
 * with every object's keys sorted bytewise, 2-space indent and a trailing
 * newline (the same shape Nix gives flake.lock), so one resolution always
 * writes the same bytes. Per pin: `type`, the resolved `url` (github: the
 * archive URL of the rev, plus `owner`/`repo`), `ref`/`rev`/`revCount`/
 * `lastModified` where they apply, `submodules`/`shallow`/`exportIgnore`/`executable`/
 * `unpack` when set, the content hash and its kind — `narHash` (SRI SHA-256
 * of the NAR) for trees and executables, `hash` (SRI, flat) for plain files,
 * never both — the `storePath`, and `manifestDigest`, the SRI SHA-256 of the
 * manifest entry it was resolved from (manifest.ts `pinDigest`).
 *
 * Reading refuses an unknown version, unknown or missing fields, a hash of the
 * wrong kind for the pin and malformed hashes or store paths
 * (ERR_BAD_LOCKFILE). Writing goes to a temporary file in the same directory,
 * fsynced, then renamed over the target, so a reader never sees half a file.
 */

import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FetchCacheError } from '../errors.js';
import { formatStorePath, makeFixedOutputPath, parseStorePath } from '../nix/store-path.js';
import { parseLockHash } from './hashes.js';
import type { PinType } from './manifest.js';

export const LOCKFILE_VERSION = 1;

/**
 * One pin as `pins.lock` records it: what was fetched (URL, rev) and what it made (hash, store path);
 * docs/pins.md lists the fields.
 */
export interface LockedPin {
  readonly type: PinType;
  readonly url: string;
  readonly owner?: string | undefined;
  readonly repo?: string | undefined;
  readonly ref?: string | undefined;
  readonly rev?: string | undefined;
  readonly revCount?: number | undefined;
  readonly lastModified?: number | undefined;
  readonly submodules?: boolean | undefined;
  readonly shallow?: boolean | undefined;
  /** Set when the manifest sets it (git): whether export-ignore paths were left out. */
  readonly exportIgnore?: boolean | undefined;
  readonly executable?: boolean | undefined;
  readonly unpack?: boolean | undefined;
  /** SRI SHA-256 of the NAR of a tree (or executable file). */
  readonly narHash?: string | undefined;
  /** SRI flat hash of a plain file. */
  readonly hash?: string | undefined;
  readonly storePath: string;
  readonly manifestDigest: string;
}

/** The contents of `pins.lock`: its version and the locked pins by name. */
export interface Lockfile {
  readonly version: typeof LOCKFILE_VERSION;
  readonly pins: Readonly<Record<string, LockedPin>>;
}

/** A lockfile with no pins (what `readLockfile` gives when there is no file). */
export function emptyLockfile(): Lockfile {
  return { version: LOCKFILE_VERSION, pins: {} };
}

type Kind = 'string' | 'number' | 'boolean';
const BASE: Record<string, Kind> = {
  type: 'string',
  url: 'string',
  narHash: 'string',
  hash: 'string',
  storePath: 'string',
  manifestDigest: 'string',
};
const FIELDS: Record<PinType, Record<string, Kind>> = {
  url: { ...BASE, executable: 'boolean', unpack: 'boolean', lastModified: 'number' },
  tarball: { ...BASE, lastModified: 'number' },
  git: {
    ...BASE,
    ref: 'string',
    rev: 'string',
    revCount: 'number',
    lastModified: 'number',
    submodules: 'boolean',
    shallow: 'boolean',
    exportIgnore: 'boolean',
  },
  github: { ...BASE, owner: 'string', repo: 'string', ref: 'string', rev: 'string', lastModified: 'number' },
};
const REQUIRED: Record<PinType, readonly string[]> = {
  url: ['url', 'storePath', 'manifestDigest'],
  tarball: ['url', 'storePath', 'manifestDigest'],
  git: ['url', 'rev', 'storePath', 'manifestDigest'],
  github: ['owner', 'repo', 'url', 'rev', 'storePath', 'manifestDigest'],
};

function bad(message: string, file: string | undefined): FetchCacheError {
  return new FetchCacheError('ERR_BAD_LOCKFILE', `${file ?? 'lockfile'}: ${message}`, {
    ...(file === undefined ? {} : { path: file }),
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Which hash field a pin of this shape carries: flat only for a plain (non-executable, packed) file. */
export function hashKind(p: Pick<LockedPin, 'type' | 'executable' | 'unpack'>): 'hash' | 'narHash' {
  return p.type === 'url' && p.executable !== true && p.unpack !== true ? 'hash' : 'narHash';
}

function validatePin(name: string, v: unknown, file: string | undefined): LockedPin {
  const where = `pins.${name}`;
  if (!isObject(v)) throw bad(`${where} must be an object`, file);
  const type = v.type;
  if (typeof type !== 'string' || !(type in FIELDS))
    throw bad(`${where}.type is unknown: ${JSON.stringify(type ?? null)}`, file);
  const fields = FIELDS[type as PinType];
  for (const [key, value] of Object.entries(v)) {
    const kind = fields[key];
    if (kind === undefined) throw bad(`${where}.${key} is not a field of ${type} pins`, file);
    if (typeof value !== kind) throw bad(`${where}.${key} must be a ${kind}`, file);
    if (kind === 'number' && (!Number.isSafeInteger(value) || (value as number) < 0))
      throw bad(`${where}.${key} must be a non-negative integer`, file);
  }
  for (const key of REQUIRED[type as PinType]) {
    if (v[key] === undefined) throw bad(`${where}: missing field '${key}'`, file);
  }
  const pin = v as unknown as LockedPin;
  const kind = hashKind(pin);
  const other = kind === 'hash' ? 'narHash' : 'hash';
  if (v[other] !== undefined)
    throw bad(
      `${where}.${other} does not belong to this pin (it records a ${kind === 'hash' ? 'flat file hash' : 'NAR hash'})`,
      file,
    );
  if (v[kind] === undefined) throw bad(`${where}: missing field '${kind}'`, file);
  try {
    parseLockHash(v[kind] as string, kind === 'narHash');
    parseLockHash(pin.manifestDigest, true);
  } catch (e) {
    throw bad(`${where}: bad hash: ${(e as Error).message}`, file);
  }
  if (pin.rev !== undefined && !/^[0-9a-f]{40}$/.test(pin.rev))
    throw bad(`${where}.rev must be a 40-digit lowercase hex commit id`, file);
  try {
    parseStorePath(pin.storePath, dirname(pin.storePath));
  } catch (e) {
    throw bad(`${where}.storePath: ${(e as Error).message}`, file);
  }
  return pin;
}

/** The store path a lockfile entry's hash implies, in the entry's own store dir. */
export function impliedStorePath(pin: LockedPin): string {
  const dir = dirname(pin.storePath);
  const name = parseStorePath(pin.storePath, dir).name;
  const kind = hashKind(pin);
  const hash = parseLockHash(pin[kind]!, kind === 'narHash');
  const method = kind === 'hash' ? 'flat' : 'nar';
  return formatStorePath(makeFixedOutputPath({ name, method, hash }, dir), dir);
}

/** Parses and validates lockfile text. */
export function parseLockfile(text: string, file?: string): Lockfile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`invalid JSON: ${(e as Error).message}`, file);
  }
  if (!isObject(doc)) throw bad('must be a JSON object', file);
  for (const key of Object.keys(doc)) {
    if (key !== 'version' && key !== 'pins') throw bad(`unknown top-level field '${key}'`, file);
  }
  if (doc.version !== LOCKFILE_VERSION) {
    throw bad(
      `unsupported lockfile version ${JSON.stringify(doc.version ?? null)} (this fetch-cache reads version ${LOCKFILE_VERSION})`,
      file,
    );
  }
  if (!isObject(doc.pins)) throw bad("'pins' must be an object", file);
  const pins: Record<string, LockedPin> = {};
  for (const [name, v] of Object.entries(doc.pins)) pins[name] = validatePin(name, v, file);
  return { version: LOCKFILE_VERSION, pins };
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort(compareBytes)) if (v[k] !== undefined) out[k] = sortKeys(v[k]);
  return out;
}

/** The canonical text of a lockfile: sorted keys, 2-space indent, trailing newline. */
export function formatLockfile(lock: Lockfile): string {
  return `${JSON.stringify(sortKeys(lock), null, 2)}\n`;
}

/** Reads `file`; a missing file is an empty lockfile. */
export async function readLockfile(file: string): Promise<Lockfile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyLockfile();
    throw new FetchCacheError('ERR_IO', `cannot read '${file}': ${(e as Error).message}`, { path: file });
  }
  return parseLockfile(text, file);
}

/** Writes `lock` atomically (temp file + fsync + rename); returns false when the file already had these bytes. */
export async function writeLockfile(file: string, lock: Lockfile): Promise<boolean> {
  return writeTextAtomically(file, formatLockfile(lock));
}

/**
 * Writes `text` to `file` atomically (a temp file in the same directory, fsynced, renamed over it), so a
 * reader never sees half a file; false when the file already had these bytes. The manifest is written
 * this way too (`lock --import`).
 */
export async function writeTextAtomically(file: string, text: string): Promise<boolean> {
  try {
    if ((await readFile(file, 'utf8')) === text) return false;
  } catch {
    // missing: write it
  }
  const tmp = join(
    dirname(file),
    `.${basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`,
  );
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new FetchCacheError('ERR_IO', `cannot write '${file}': ${(e as Error).message}`, { path: file });
  }
  return true;
}
