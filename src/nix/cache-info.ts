/**
 * `nix-cache-info`, the file at a binary cache's root (docs/formats.md §9): lines of
 * `Key: value`. Reading follows Nix's `BinaryCacheStore::init`: each line is
 * split at its first `:`, the value trimmed, lines without `:` skipped, later
 * lines win. `StoreDir` must match the client's store; `WantMassQuery: 1`
 * turns mass querying on; `Priority` is an integer, lower preferred. A server
 * must serve this file: Nix treats a cache without it as not a binary cache.
 */

import { DEFAULT_STORE_DIR } from './store-path.js';

export interface NixCacheInfo {
  storeDir?: string;
  wantMassQuery?: boolean;
  priority?: number;
  /** Other `[key, value]` lines, in file order. */
  other: [string, string][];
}

export interface NixCacheInfoInit {
  /** Default `/nix/store`. */
  storeDir?: string;
  /** Written as `1`/`0`; omitted when undefined. */
  wantMassQuery?: boolean;
  /** Omitted when undefined. */
  priority?: number;
}

/** Nix's `trim`: strips spaces, tabs, newlines and carriage returns. */
function trim(s: string): string {
  return s.replace(/^[ \t\n\r]+|[ \t\n\r]+$/g, '');
}

/**
 * `std::stoi`: an optional sign and leading digits, trailing text ignored; no
 * digits or a value outside int32 makes Nix fail, and we ignore the line instead.
 */
function parsePriority(value: string): number | undefined {
  const m = /^[+-]?[0-9]+/.exec(value);
  if (m === null) return undefined;
  const n = Number(m[0]);
  return n >= -2147483648 && n <= 2147483647 ? n : undefined;
}

export function parseNixCacheInfo(text: string): NixCacheInfo {
  const info: NixCacheInfo = { other: [] };
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    const value = trim(line.slice(colon + 1));
    if (key === 'StoreDir') {
      info.storeDir = value;
    } else if (key === 'WantMassQuery') {
      info.wantMassQuery = value === '1';
    } else if (key === 'Priority') {
      const priority = parsePriority(value);
      if (priority !== undefined) info.priority = priority;
    } else {
      info.other.push([key, value]);
    }
  }
  return info;
}

/** `StoreDir: …\nWantMassQuery: 1\nPriority: N\n`, the layout nar-bridge and the Nix manual use. */
export function formatNixCacheInfo(init: NixCacheInfoInit = {}): string {
  const storeDir = init.storeDir ?? DEFAULT_STORE_DIR;
  if (storeDir.includes('\n')) throw new TypeError('store dir cannot contain a newline');
  let text = `StoreDir: ${storeDir}\n`;
  if (init.wantMassQuery !== undefined) text += `WantMassQuery: ${init.wantMassQuery ? 1 : 0}\n`;
  if (init.priority !== undefined) {
    if (!Number.isInteger(init.priority))
      throw new TypeError(`priority must be an integer, got ${init.priority}`);
    text += `Priority: ${init.priority}\n`;
  }
  return text;
}
