/**
 * NAR listings (`<hashpart>.ls`, docs/formats.md §1): the JSON tree a binary
 * cache may publish beside a NAR, `{"version":1,"root":<node>}`, where a
 * regular file carries its size, `executable: true` when set, and `narOffset`,
 * the offset of its first content byte in the uncompressed NAR. Built from
 * `NarParser` events, so a listing costs one streaming pass and no contents.
 *
 * JSON keys are strings, so names and symlink targets must be valid UTF-8;
 * Nix's nlohmann-based writer refuses other bytes too. Such a NAR is fine but
 * has no listing: `ERR_BAD_NAR` says so and callers may skip the `.ls`.
 */

import { FetchCacheError } from '../../errors.js';
import type { NarEvent } from './parser.js';
import { compareBytes, displayBytes } from './wire.js';

export type NarListingNode =
  | { type: 'regular'; size: number; executable?: true; narOffset?: number }
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, NarListingNode> };

export interface NarListing {
  version: 1;
  root: NarListingNode;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const utf8 = new TextEncoder();

function text(bytes: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new FetchCacheError(
      'ERR_BAD_NAR',
      `cannot list NAR: ${what} '${displayBytes(bytes)}' is not valid UTF-8`,
    );
  }
}

/** Collects parser events (in order) into a listing; `contents` events are ignored. */
export class NarListingBuilder {
  #root: NarListingNode | undefined;
  /** The directories enclosing the next node, innermost last. */
  readonly #dirs: Record<string, NarListingNode>[] = [];

  add(event: NarEvent): void {
    switch (event.type) {
      case 'contents':
      case 'regularEnd':
        return;
      case 'regular': {
        const node: NarListingNode = { type: 'regular', size: event.size };
        if (event.executable) node.executable = true;
        node.narOffset = event.narOffset;
        this.#place(event.path, node);
        return;
      }
      case 'symlink':
        this.#place(event.path, { type: 'symlink', target: text(event.target, 'symlink target') });
        return;
      case 'directory': {
        const entries: Record<string, NarListingNode> = {};
        this.#place(event.path, { type: 'directory', entries });
        this.#dirs.push(entries);
        return;
      }
      case 'directoryEnd':
        this.#dirs.pop();
        return;
    }
  }

  /** The listing; throws TypeError if the events did not describe a complete root. */
  result(): NarListing {
    if (this.#root === undefined || this.#dirs.length !== 0) {
      throw new TypeError('NarListingBuilder.result(): the events did not describe a complete NAR');
    }
    return { version: 1, root: this.#root };
  }

  #place(path: readonly Uint8Array[], node: NarListingNode): void {
    const name = path[path.length - 1];
    if (name === undefined) {
      this.#root = node;
      return;
    }
    const dir = this.#dirs[this.#dirs.length - 1];
    if (dir === undefined || path.length !== this.#dirs.length) {
      throw new TypeError('NarListingBuilder.add(): events out of order');
    }
    // defineProperty: a file may be called `__proto__`.
    Object.defineProperty(dir, text(name, 'file name'), {
      value: node,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
}

/** The listing of a NAR given all its parser events. */
export function narListing(events: Iterable<NarEvent>): NarListing {
  const b = new NarListingBuilder();
  for (const e of events) b.add(e);
  return b.result();
}

/**
 * Compact JSON with keys sorted by their UTF-8 bytes, the form nlohmann-based
 * Nix (≥ 2.2x) writes; Nix 2.8 used insertion order, so readers must parse.
 */
export function renderNarListing(listing: NarListing): string {
  return `{"root":${renderNode(listing.root)},"version":${listing.version}}`;
}

function renderNode(node: NarListingNode): string {
  switch (node.type) {
    case 'regular': {
      const exe = node.executable === true ? '"executable":true,' : '';
      const off = node.narOffset === undefined ? '' : `"narOffset":${node.narOffset},`;
      return `{${exe}${off}"size":${node.size},"type":"regular"}`;
    }
    case 'symlink':
      return `{"target":${JSON.stringify(node.target)},"type":"symlink"}`;
    case 'directory': {
      const names = Object.keys(node.entries)
        .map((k) => [utf8.encode(k), k] as const)
        .sort((a, b) => compareBytes(a[0], b[0]));
      const body = names.map(([, k]) => `${JSON.stringify(k)}:${renderNode(node.entries[k]!)}`).join(',');
      return `{"entries":{${body}},"type":"directory"}`;
    }
  }
}
