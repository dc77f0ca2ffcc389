/**
 * How the CLI shows library results: path infos in the field names of
 * `nix path-info --json` (docs/cli.md), plus our own `url`/`cached` fields where a
 * command adds them.
 */

import { formatContentAddress } from '../nix/content-address.js';
import { toSRI } from '../nix/hash.js';
import { formatStorePath } from '../nix/store-path.js';
import type { PathInfo } from '../pathinfo/path-info.js';

export interface PathInfoJson {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  ca: string | null;
  signatures: string[];
  deriver?: string;
  [extra: string]: unknown;
}

export function pathInfoJson(info: PathInfo, storeDir: string): PathInfoJson {
  const out: PathInfoJson = {
    path: formatStorePath(info.storePath, storeDir),
    narHash: toSRI({ algo: 'sha256', digest: info.narSha256 }),
    narSize: info.narSize,
    references: info.references.map((r) => formatStorePath(r, storeDir)),
    ca: info.ca ? formatContentAddress(info.ca) : null,
    signatures: [...info.signatures],
  };
  if (info.deriver) out.deriver = formatStorePath(info.deriver, storeDir);
  return out;
}
