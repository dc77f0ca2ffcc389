/**
 * Limits that keep a hostile archive (a gzip or zip bomb, millions of tiny
 * members) from exhausting memory, disk or time. Bytes are counted while they
 * stream, so unpacking stops as soon as a limit is crossed rather than after
 * the damage is done.
 */

import { badArchive } from './path.js';

/** Default cap on unpacked bytes: 16 GiB. */
export const DEFAULT_MAX_UNPACKED_BYTES = 16 * 1024 ** 3;
/** Default cap on tree nodes (members plus implied directories). */
export const DEFAULT_MAX_ENTRIES = 1_000_000;

export class ByteBudget {
  private used = 0;

  /** `what` names the bytes in the error, e.g. "unpacked archive". */
  constructor(
    readonly limit: number,
    private readonly what: string,
  ) {
    if (!(limit >= 0)) throw new TypeError('byte limit must be a non-negative number');
  }

  get bytes(): number {
    return this.used;
  }

  /** Count `n` more bytes; throws ERR_BAD_ARCHIVE once the total passes the limit. */
  take(n: number): void {
    this.used += n;
    if (this.used > this.limit) throw badArchive(`${this.what} is larger than ${this.limit} bytes`);
  }

  /** Throws at once if `n` more bytes could not fit (a declared size, before reading). */
  check(n: number): void {
    if (this.used + n > this.limit) throw badArchive(`${this.what} is larger than ${this.limit} bytes`);
  }
}
