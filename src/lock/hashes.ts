/**
 * Hash strings in pin files. Users write expected hashes in any form Nix
 * takes (SRI, `sha256:<nix32|hex|base64>`, bare nix32/hex as SHA-256); the
 * lockfile only holds SRI, and a `narHash` there must be SHA-256 (Nix's
 * `narHash` rule, docs/formats.md §6).
 */

import { FetchCacheError } from '../errors.js';
import { type Hash, parseHash, parseSRI, toSRI } from '../nix/hash.js';

/** An expected hash as a user writes it; `sha256Only` for NAR hashes. */
export function parseUserHash(text: string, sha256Only: boolean): Hash {
  const h = /[:-]/.test(text) ? parseHash(text) : parseHash(text, 'sha256');
  if (sha256Only && h.algo !== 'sha256') {
    throw new FetchCacheError('ERR_BAD_HASH', `a NAR hash must use SHA-256, not ${h.algo}`, {
      expected: 'sha256',
      actual: h.algo,
    });
  }
  return h;
}

/** A lockfile hash: strictly SRI, in canonical spelling; `sha256Only` for `narHash`. */
export function parseLockHash(text: string, sha256Only: boolean): Hash {
  const h = parseSRI(text);
  if (sha256Only && h.algo !== 'sha256') {
    throw new FetchCacheError('ERR_BAD_HASH', `narHash must use SHA-256, not ${h.algo}`, {
      expected: 'sha256',
      actual: h.algo,
    });
  }
  if (toSRI(h) !== text) {
    throw new FetchCacheError('ERR_BAD_HASH', `hash '${text}' is not in canonical SRI form`, {
      actual: text,
    });
  }
  return h;
}
