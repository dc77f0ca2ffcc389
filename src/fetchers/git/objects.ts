/**
 * Reading git objects without a checkout: packs through their index
 * (pack.ts) and loose objects, each object's id re-verified (SHA-1 of
 * `<type> <size>\0<data>`) before use. Raw object bytes are parsed here, so
 * tree entry names stay exact bytes. A fetch that adds a pack is noticed on
 * the next miss.
 *
 * Formats (gitformat-*): a tree is a run of
 * `<octal mode> SP <name bytes> NUL <20-byte id>`; a commit and a tag are
 * header lines (`tree`, `parent`, `committer <ident> <secs> <tz>`, `object`,
 * `type`) up to the first blank line, then the message. Alternates
 * (`objects/info/alternates`) are not followed.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { FetchCacheError } from '../../errors.js';
import { toBase16 } from '../../nix/hash.js';
import { createHasher } from '../../nix/hashing.js';
import { type PackedObject, PackFile } from './pack.js';

export interface TreeEntry {
  /** Octal mode as git writes it: `100644`, `100755`, `120000`, `40000`, `160000`. */
  readonly mode: string;
  readonly name: Uint8Array;
  readonly oid: string;
}

export interface CommitInfo {
  readonly tree: string;
  readonly parents: readonly string[];
  /** Committer time, seconds since the epoch. */
  readonly committerTime: number;
}

export type RawObject = PackedObject;

export const FULL_REV = /^[0-9a-f]{40}$/;

/** A git object's id: SHA-1 of `<type> <size>\0<data>`, in hex. */
export function objectId(type: string, data: Uint8Array): string {
  const h = createHasher('sha1');
  h.update(`${type} ${data.length}\0`);
  h.update(data);
  return toBase16(h.digest());
}

/** Commit parents remembered from indexing a received pack, at most this many commits. */
const MAX_LEARNED = 500_000;

export class GitObjects {
  private packs: PackFile[] = [];
  private packNames = new Set<string>();
  private readonly learned = new Map<string, readonly string[]>();

  constructor(readonly gitdir: string) {}

  /** Opens packs not seen yet (a fetch adds new ones); true when there were any. */
  private scanPacks(): boolean {
    const dir = join(this.gitdir, 'objects', 'pack');
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.idx') && !this.packNames.has(n));
    } catch {
      return false;
    }
    for (const name of names) {
      this.packNames.add(name);
      const pack = new PackFile(join(dir, name), join(dir, name.replace(/\.idx$/, '.pack')), (oid) =>
        this.readSync(oid, false),
      );
      this.packs.push(pack);
    }
    return names.length > 0;
  }

  /**
   * Remembers a commit's parents, seen while indexing a received pack (its id
   * computed there from its bytes), so `parents` needs no read for it.
   */
  learnCommit(oid: string, data: Uint8Array): void {
    if (this.learned.size >= MAX_LEARNED) return;
    try {
      this.learned.set(oid, parseCommit(data, oid).parents);
    } catch {
      // A malformed commit is reported if and when something reads it.
    }
  }

  /** A commit's parents, or undefined when there is no such commit here. */
  async parents(oid: string): Promise<readonly string[] | undefined> {
    const known = this.learned.get(oid);
    if (known !== undefined) return known;
    const obj = await this.read(oid);
    if (obj === undefined || obj.type !== 'commit') return undefined;
    return parseCommit(obj.data, oid).parents;
  }

  /** The object as stored (its id not re-verified), or undefined; for delta bases of a received thin pack. */
  readRaw(oid: string): RawObject | undefined {
    return this.readSync(oid, true);
  }

  private readSync(oid: string, rescan: boolean): RawObject | undefined {
    if (this.packs.length === 0) this.scanPacks();
    for (const pack of this.packs) {
      const obj = pack.read(oid);
      if (obj) return obj;
    }
    const loose = this.readLoose(oid);
    if (loose) return loose;
    if (rescan && this.scanPacks()) return this.readSync(oid, false);
    return undefined;
  }

  /** A loose object: `objects/xx/<38 hex>`, zlib of `<type> <size>\0<data>`. */
  private readLoose(oid: string): RawObject | undefined {
    let raw: Buffer;
    try {
      raw = inflateSync(readFileSync(join(this.gitdir, 'objects', oid.slice(0, 2), oid.slice(2))));
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw new FetchCacheError('ERR_GIT', `cannot read loose git object ${oid}`, {
        path: this.gitdir,
        cause: e,
      });
    }
    const nul = raw.indexOf(0);
    const [type, size] = raw.toString('latin1', 0, nul).split(' ');
    const data = new Uint8Array(raw.buffer, raw.byteOffset + nul + 1, raw.length - nul - 1);
    if (Number(size) !== data.length) throw badObject(oid, 'size does not match its header');
    return { type: type ?? '', data };
  }

  /** The object (its id re-verified), or undefined when it is not in this repository. */
  async read(oid: string): Promise<RawObject | undefined> {
    if (!FULL_REV.test(oid)) throw new TypeError(`not a git object id: ${oid}`);
    const obj = this.readSync(oid, true);
    if (obj === undefined) return undefined;
    const actual = objectId(obj.type, obj.data);
    if (actual !== oid) {
      throw new FetchCacheError('ERR_INTEGRITY', `git object ${oid} hashes to ${actual}`, {
        path: this.gitdir,
        expected: oid,
        actual,
      });
    }
    return obj;
  }

  async has(oid: string): Promise<boolean> {
    if (this.packs.length === 0) this.scanPacks();
    return this.readSync(oid, true) !== undefined;
  }

  private async need(oid: string, type: string): Promise<Uint8Array> {
    const obj = await this.read(oid);
    if (obj === undefined) {
      throw new FetchCacheError('ERR_GIT', `git object ${oid} is missing from '${this.gitdir}'`, {
        path: this.gitdir,
        actual: oid,
      });
    }
    if (obj.type !== type) {
      throw new FetchCacheError('ERR_GIT', `git object ${oid} is a ${obj.type}, not a ${type}`, {
        expected: type,
        actual: obj.type,
      });
    }
    return obj.data;
  }

  async blob(oid: string): Promise<Uint8Array> {
    return this.need(oid, 'blob');
  }

  async tree(oid: string): Promise<TreeEntry[]> {
    return parseTree(await this.need(oid, 'tree'), oid);
  }

  async commit(oid: string): Promise<CommitInfo> {
    return parseCommit(await this.need(oid, 'commit'), oid);
  }

  /** Follows annotated tags to the object they finally name; errors unless it is a commit. */
  async peelToCommit(oid: string): Promise<string> {
    let current = oid;
    for (let depth = 0; depth < 16; depth++) {
      const obj = await this.read(current);
      if (obj === undefined) return current;
      if (obj.type === 'commit') return current;
      if (obj.type !== 'tag') {
        throw new FetchCacheError('ERR_GIT', `git object ${oid} is a ${obj.type}, not a commit`, {
          expected: 'commit',
          actual: obj.type,
        });
      }
      const target = headerValue(obj.data, 'object');
      if (target === undefined) throw badObject(current, 'tag without an object line');
      current = target;
    }
    throw badObject(oid, 'tag chain too long');
  }
}

function badObject(oid: string, why: string): FetchCacheError {
  return new FetchCacheError('ERR_GIT', `malformed git object ${oid}: ${why}`, { actual: oid });
}

export function parseTree(data: Uint8Array, oid = '?'): TreeEntry[] {
  const entries: TreeEntry[] = [];
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let i = 0;
  while (i < buf.length) {
    const space = buf.indexOf(0x20, i);
    const nul = space < 0 ? -1 : buf.indexOf(0, space + 1);
    if (space < 0 || nul < 0 || nul + 21 > buf.length) throw badObject(oid, 'truncated tree entry');
    entries.push({
      mode: buf.toString('latin1', i, space),
      name: new Uint8Array(buf.subarray(space + 1, nul)),
      oid: buf.toString('hex', nul + 1, nul + 21),
    });
    i = nul + 21;
  }
  return entries;
}

/** Header lines of a commit or tag, before the first blank line. */
function headerLines(data: Uint8Array): string[] {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const end = buf.indexOf('\n\n');
  return buf.toString('latin1', 0, end < 0 ? buf.length : end).split('\n');
}

function headerValue(data: Uint8Array, name: string): string | undefined {
  const line = headerLines(data).find((l) => l.startsWith(`${name} `));
  return line?.slice(name.length + 1);
}

export function parseCommit(data: Uint8Array, oid = '?'): CommitInfo {
  let tree: string | undefined;
  const parents: string[] = [];
  let committerTime: number | undefined;
  for (const line of headerLines(data)) {
    if (line.startsWith('tree ')) tree = line.slice(5);
    else if (line.startsWith('parent ')) parents.push(line.slice(7));
    else if (line.startsWith('committer ')) {
      const m = / (-?\d+) [+-]\d{4}$/.exec(line);
      if (m) committerTime = Number(m[1]);
    }
  }
  if (tree === undefined || committerTime === undefined)
    throw badObject(oid, 'commit without tree or committer');
  return { tree, parents, committerTime };
}
