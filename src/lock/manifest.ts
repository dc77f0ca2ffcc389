/**
 * The pin manifest `pins.toml` (human-edited): parsing and validation into
 * typed pins. Every failure is ERR_BAD_MANIFEST naming the pin and field;
 * unknown pin types and unknown fields are refused (a typo must not silently
 * change what is pinned). Format (documented in docs/pins.md):
 *
 *   [github]                      # optional: where `github` pins come from
 *   base = "https://github.com"   # archive host: <base>/<owner>/<repo>/archive/<rev>.tar.gz
 *   git-base = "https://github.com" # ref listing: <git-base>/<owner>/<repo>.git
 *
 *   [pins.<name>]
 *   type = "url" | "tarball" | "git" | "github"
 *   url: url, executable?, unpack? (then a tree), hash? (expected)
 *   tarball: url, hash?
 *   git: url, at most one of ref / rev / tag (none: the remote HEAD), with tag:
 *        prefix?, prereleases?; submodules?, shallow?, exportIgnore? (default:
 *        true unless submodules, as builtins.fetchGit; false: the tree as a
 *        flake's git input has it)
 *   github: owner, repo, ref / rev / tag as for git (none: HEAD)
 *   any: mirrors = [...] (url/tarball), name (store path name)
 */

import semver from 'semver';
import { parse as parseToml } from 'smol-toml';
import { FetchCacheError } from '../errors.js';
import { makeHash, toSRI } from '../nix/hash.js';
import { sha256 } from '../nix/hashing.js';
import { isValidStorePathName } from '../nix/store-path.js';
import { parseUserHash } from './hashes.js';

export const DEFAULT_GITHUB_BASE = 'https://github.com';

export interface PinCommon {
  /** The pin's own name: its key in `[pins.<name>]` (and in `pins.lock`). */
  readonly pinName: string;
  /**
   * The pin's own name, as `pinName`: `parseManifest` still sets it for callers written before
   * `pinName` existed.
   * @deprecated Use `pinName`; `name` is the store path name.
   */
  readonly pin?: string | undefined;
  /** Store path name (default: `source` for trees, the URL's base name for files). */
  readonly name?: string | undefined;
}

export interface UrlPin extends PinCommon {
  readonly type: 'url';
  readonly url: string;
  readonly mirrors?: readonly string[] | undefined;
  readonly executable?: boolean | undefined;
  /** Unpack it: then it is a tree, as a `tarball` pin. */
  readonly unpack?: boolean | undefined;
  /** Expected hash, normalised to SRI. */
  readonly hash?: string | undefined;
}

export interface TarballPin extends PinCommon {
  readonly type: 'tarball';
  readonly url: string;
  readonly mirrors?: readonly string[] | undefined;
  readonly hash?: string | undefined;
}

/** Which commit a git or github pin follows. */
export interface RevSelector {
  readonly ref?: string | undefined;
  readonly rev?: string | undefined;
  /** A semver range (`^1.2`, `*`): the newest tag matching it. */
  readonly tag?: string | undefined;
  /** Tag prefix, e.g. `v` for `v1.2.3`. */
  readonly prefix?: string | undefined;
  readonly prereleases?: boolean | undefined;
}

export interface GitPin extends PinCommon, RevSelector {
  readonly type: 'git';
  readonly url: string;
  readonly submodules?: boolean | undefined;
  readonly shallow?: boolean | undefined;
  /** Leave out `export-ignore` paths; default true unless `submodules` (`builtins.fetchGit`). */
  readonly exportIgnore?: boolean | undefined;
}

export interface GithubPin extends PinCommon, RevSelector {
  readonly type: 'github';
  readonly owner: string;
  readonly repo: string;
  /** Archive host (from the manifest's `[github]` table or the caller). */
  readonly base?: string | undefined;
  /** Host whose `<owner>/<repo>.git` lists the refs. */
  readonly gitBase?: string | undefined;
}

/**
 * One pin of the manifest: a URL, tarball, git or github source and how to select its version
 * (docs/pins.md).
 */
export type Pin = UrlPin | TarballPin | GitPin | GithubPin;
export type PinType = Pin['type'];

/** The contents of `pins.toml`: the pins by name (docs/pins.md). */
export interface Manifest {
  readonly pins: ReadonlyMap<string, Pin>;
}

const COMMON = ['type', 'name'];
const SELECTOR = ['ref', 'rev', 'tag', 'prefix', 'prereleases'];
const FIELDS: Record<PinType, readonly string[]> = {
  url: [...COMMON, 'url', 'mirrors', 'executable', 'unpack', 'hash'],
  tarball: [...COMMON, 'url', 'mirrors', 'hash'],
  git: [...COMMON, 'url', ...SELECTOR, 'submodules', 'shallow', 'exportIgnore'],
  github: [...COMMON, 'owner', 'repo', ...SELECTOR],
};

/** Pin names: what a shell and a Nix attribute name both take without quoting. */
const PIN_NAME = /^[A-Za-z_][A-Za-z0-9_.+-]*$/;

function bad(message: string, path?: string): FetchCacheError {
  return new FetchCacheError('ERR_BAD_MANIFEST', message, path === undefined ? {} : { path });
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

class Fields {
  constructor(
    private readonly t: Table,
    private readonly where: string,
    private readonly file: string | undefined,
  ) {}
  err(field: string, what: string): FetchCacheError {
    return bad(`${this.where}.${field} ${what}`, this.file);
  }
  str(field: string, required: true): string;
  str(field: string, required?: false): string | undefined;
  str(field: string, required = false): string | undefined {
    const v = this.t[field];
    if (v === undefined) {
      if (required) throw bad(`${this.where}: missing field '${field}'`, this.file);
      return undefined;
    }
    if (typeof v !== 'string' || v.length === 0) throw this.err(field, 'must be a non-empty string');
    return v;
  }
  bool(field: string): boolean | undefined {
    const v = this.t[field];
    if (v !== undefined && typeof v !== 'boolean') throw this.err(field, 'must be true or false');
    return v;
  }
  strings(field: string): string[] | undefined {
    const v = this.t[field];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0))
      throw this.err(field, 'must be a list of non-empty strings');
    return v as string[];
  }
}

function checkUrl(f: Fields, field: string, url: string, schemes: RegExp): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw f.err(field, `is not a URL: '${url}'`);
  }
  if (!schemes.test(u.protocol)) throw f.err(field, `has an unsupported scheme '${u.protocol}'`);
}

function selector(f: Fields): RevSelector {
  const ref = f.str('ref');
  const rev = f.str('rev');
  const tag = f.str('tag');
  const given = [ref, rev, tag].filter((x) => x !== undefined).length;
  if (given > 1) throw f.err('ref', 'conflicts: give at most one of ref, rev and tag');
  if (rev !== undefined && !/^[0-9a-f]{40}$/.test(rev))
    throw f.err('rev', `must be a full 40-digit lowercase hex commit id, not '${rev}'`);
  const prefix = f.str('prefix');
  const prereleases = f.bool('prereleases');
  if (tag === undefined && (prefix !== undefined || prereleases !== undefined))
    throw f.err(prefix !== undefined ? 'prefix' : 'prereleases', 'only applies to tag pins');
  if (tag !== undefined) validateRange(f, tag);
  return { ref, rev, tag, prefix, prereleases };
}

function validateRange(f: Fields, range: string): void {
  if (semver.validRange(range) === null) throw f.err('tag', `is not a semver range: '${range}'`);
}

/** Flat file hashes may use any algorithm; NAR hashes of trees and executables are SHA-256, as Nix's. */
function hashField(f: Fields, flat: boolean): string | undefined {
  const text = f.str('hash');
  if (text === undefined) return undefined;
  try {
    return toSRI(parseUserHash(text, !flat));
  } catch (e) {
    throw f.err('hash', `is not a valid hash: ${(e as Error).message}`);
  }
}

function parsePin(pin: string, t: unknown, file: string | undefined, github: Table): Pin {
  const where = `pins.${pin}`;
  if (!PIN_NAME.test(pin)) throw bad(`invalid pin name '${pin}' (letters, digits, _ . + -)`, file);
  if (!isTable(t)) throw bad(`${where} must be a table`, file);
  const f = new Fields(t, where, file);
  const type = f.str('type', true);
  if (!(type in FIELDS)) throw f.err('type', `is unknown: '${type}' (expected url, tarball, git or github)`);
  const known = FIELDS[type as PinType];
  for (const key of Object.keys(t))
    if (!known.includes(key)) throw f.err(key, `is not a field of ${type} pins`);
  const name = f.str('name');
  if (name !== undefined && !isValidStorePathName(name))
    throw f.err('name', `is not a valid store path name`);
  const common = { pinName: pin, pin, ...(name === undefined ? {} : { name }) };
  switch (type as PinType) {
    case 'url':
    case 'tarball': {
      const url = f.str('url', true);
      checkUrl(f, 'url', url, /^(https?|file):$/);
      const mirrors = f.strings('mirrors');
      for (const m of mirrors ?? []) checkUrl(f, 'mirrors', m, /^(https?|file):$/);
      const executable = type === 'url' ? f.bool('executable') : undefined;
      const unpack = type === 'url' ? f.bool('unpack') : undefined;
      if (executable && unpack) throw f.err('executable', 'conflicts with unpack');
      const hash = hashField(f, type === 'url' && unpack !== true && executable !== true);
      return omitUndefined({ ...common, type, url, mirrors, executable, unpack, hash }) as Pin;
    }
    case 'git': {
      const url = f.str('url', true);
      if (!/^(https?|file):\/\//i.test(url) && !url.startsWith('/'))
        throw f.err('url', `must be an http(s):// or file:// URL or an absolute path, not '${url}'`);
      const submodules = f.bool('submodules');
      const shallow = f.bool('shallow');
      const exportIgnore = f.bool('exportIgnore');
      if (exportIgnore === true && submodules === true)
        throw f.err('exportIgnore', 'cannot be combined with submodules (as in Nix)');
      return omitUndefined({
        ...common,
        type,
        url,
        ...selector(f),
        submodules,
        shallow,
        exportIgnore,
      }) as GitPin;
    }
    case 'github': {
      const owner = f.str('owner', true);
      const repo = f.str('repo', true);
      for (const [k, v] of [
        ['owner', owner],
        ['repo', repo],
      ] as const) {
        if (!/^[A-Za-z0-9_.-]+$/.test(v) || v === '.' || v === '..') throw f.err(k, `is not valid: '${v}'`);
      }
      const base = typeof github.base === 'string' ? github.base : undefined;
      const gitBase = typeof github['git-base'] === 'string' ? github['git-base'] : undefined;
      return omitUndefined({ ...common, type, owner, repo, ...selector(f), base, gitBase }) as GithubPin;
    }
  }
}

function omitUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Parses `pins.toml` text; `file` names it in errors. */
export function parseManifest(text: string, file?: string): Manifest {
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (e) {
    const err = e as { message?: string; line?: number; column?: number };
    const first = (err.message ?? String(e)).split('\n')[0];
    const at = err.line === undefined ? '' : ` at line ${err.line}, column ${err.column ?? 0}`;
    throw new FetchCacheError('ERR_BAD_MANIFEST', `${file ?? 'manifest'}: ${first}${at}`, {
      ...(file === undefined ? {} : { path: file }),
      cause: e,
    });
  }
  for (const key of Object.keys(doc)) {
    if (key !== 'pins' && key !== 'github')
      throw bad(`unknown top-level key '${key}' (expected pins, github)`, file);
  }
  const github = doc.github ?? {};
  if (!isTable(github)) throw bad('github must be a table', file);
  for (const key of Object.keys(github)) {
    if (key !== 'base' && key !== 'git-base')
      throw bad(`github.${key} is unknown (expected base, git-base)`, file);
    const v = github[key];
    if (typeof v !== 'string' || !/^(https?|file):\/\//.test(v))
      throw bad(`github.${key} must be an http(s) URL`, file);
  }
  const pinsTable = doc.pins ?? {};
  if (!isTable(pinsTable)) throw bad('pins must be a table of [pins.<name>] tables', file);
  const pins = new Map<string, Pin>();
  for (const name of Object.keys(pinsTable).sort())
    pins.set(name, parsePin(name, pinsTable[name], file, github));
  return { pins };
}

export interface GithubHosts {
  /** Archive host; default https://github.com. */
  readonly base?: string | undefined;
  /** Host whose `<owner>/<repo>.git` lists refs; default https://github.com. */
  readonly gitBase?: string | undefined;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

/** The pin with the caller's github hosts (which win over the manifest's) and the defaults filled in. */
export function effectivePin(pin: Pin, hosts: GithubHosts = {}): Pin {
  if (pin.type !== 'github') return pin;
  return {
    ...pin,
    base: trimSlash(hosts.base ?? pin.base ?? DEFAULT_GITHUB_BASE),
    gitBase: trimSlash(hosts.gitBase ?? pin.gitBase ?? DEFAULT_GITHUB_BASE),
  };
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * The lockfile's `manifestDigest`: SRI SHA-256 of the canonical JSON of the
 * effective entry (sorted keys, the pin's own name — `pinName`, and the deprecated `pin` — left out). A change to any
 * field of the entry, or to the github hosts it uses, re-resolves the pin.
 */
export function pinDigest(pin: Pin): string {
  const { pinName: _name, pin: _deprecated, ...entry } = pin;
  return toSRI(makeHash('sha256', sha256(canonicalJson(entry))));
}
