/**
 * Who may upload: holders of the upload token. Nix sends credentials from a
 * netrc file as HTTP Basic auth, so the token is accepted as the Basic
 * password (any user name) and also as `Authorization: Bearer <token>`.
 * Comparison is constant-time over SHA-256 digests (equal lengths whatever
 * the input). Without a configured token, uploads are off (403). The token
 * is never logged or echoed.
 */

import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { sha256 } from '../nix/hashing.js';
import { HttpError } from './http.js';

const CHALLENGE = { 'WWW-Authenticate': 'Basic realm="fetch-cache uploads", charset="UTF-8"' };

export class UploadAuth {
  private readonly digest: Buffer | undefined;

  /** `token` undefined: uploads disabled. An empty token is refused (it would match `Basic Og==`). */
  constructor(token: string | undefined) {
    if (token !== undefined && token === '') throw new TypeError('the upload token is empty');
    this.digest = token === undefined ? undefined : Buffer.from(sha256(token));
  }

  get enabled(): boolean {
    return this.digest !== undefined;
  }

  /** Throws 403 when uploads are off, 401 (with a Basic challenge) without the right token. */
  check(req: IncomingMessage): void {
    if (this.digest === undefined) throw new HttpError(403, 'uploads are not enabled on this cache');
    const presented = presentedToken(req.headers.authorization);
    if (presented === undefined || !timingSafeEqual(Buffer.from(sha256(presented)), this.digest)) {
      throw new HttpError(401, 'uploading needs the upload token', CHALLENGE);
    }
  }
}

/** The token in an Authorization header: the Basic password or the Bearer credential. */
export function presentedToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^([A-Za-z]+) +(\S+) *$/.exec(header);
  if (m === null) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'bearer') return m[2];
  if (scheme !== 'basic') return undefined;
  const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}
