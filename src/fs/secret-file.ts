/**
 * Secret files (signing keys, upload tokens) must be readable by their owner
 * only, as OpenSSH insists for private keys. `secretFileWarning` says what
 * is wrong with one — group or other permission bits set — so `serve` can
 * warn before using it; it does not refuse, since a key in a container
 * volume or a Nix store may legitimately have looser modes.
 */

import { statSync } from 'node:fs';

/** A one-line warning when `path` is group- or world-accessible; undefined when it is private or absent. */
export function secretFileWarning(path: string, what = 'secret key file'): string | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    return undefined;
  }
  const loose = mode & 0o077;
  if (loose === 0) return undefined;
  const octal = (mode & 0o777).toString(8).padStart(3, '0');
  const who = [loose & 0o070 ? 'its group' : '', loose & 0o007 ? 'everyone' : '']
    .filter(Boolean)
    .join(' and ');
  return `${what} '${path}' has mode ${octal}: ${who} can access it; run chmod 600 '${path}'`;
}
