/**
 * The one error type users of fetch-cache see. Every failure a user can cause
 * (bad input, a hash that does not match, a damaged store) is a
 * `FetchCacheError` with a stable `code` from the closed union below; each code
 * is documented in docs/errors.md. Programmer misuse (wrong argument types,
 * calling methods out of order) throws a plain `TypeError` instead.
 */

/** The stable codes of `FetchCacheError` (docs/errors.md lists what each means). */
export type ErrorCode =
  | 'ERR_BAD_NIX32'
  | 'ERR_BAD_HASH'
  | 'ERR_BAD_STORE_PATH'
  | 'ERR_BAD_CA'
  | 'ERR_BAD_NAR'
  | 'ERR_BAD_NARINFO'
  | 'ERR_BAD_KEY'
  | 'ERR_BAD_SIGNATURE'
  | 'ERR_BAD_DIRECTORY'
  | 'ERR_BAD_NODE'
  | 'ERR_HASH_MISMATCH'
  | 'ERR_INTEGRITY'
  | 'ERR_PATH_CONFLICT'
  | 'ERR_NOT_FOUND'
  | 'ERR_UNSUPPORTED_FILE_TYPE'
  | 'ERR_IO'
  | 'ERR_STORE_LOCKED'
  | 'ERR_STORE_VERSION'
  | 'ERR_STORE_MIGRATE'
  | 'ERR_STORE_BACKEND'
  | 'ERR_STORE_DIR'
  | 'ERR_DB_DAMAGED'
  | 'ERR_BAD_ARCHIVE'
  | 'ERR_BAD_URL'
  | 'ERR_HTTP'
  | 'ERR_OFFLINE'
  | 'ERR_GIT'
  | 'ERR_BAD_MANIFEST'
  | 'ERR_BAD_LOCKFILE'
  | 'ERR_NIX_STORE';

export interface FetchCacheErrorFields {
  /** What was expected, e.g. an SRI hash or a digest in hex. */
  expected?: string;
  /** What was found instead. */
  actual?: string;
  /** The file, store path or URL the error is about. */
  path?: string;
  /** Byte offset into a stream (NAR parser). */
  offset?: number;
  cause?: unknown;
}

/**
 * Every user-facing failure: a stable `code`, a one-line message, and for hash mismatches the expected and
 * actual hashes.
 */
export class FetchCacheError extends Error {
  override readonly name = 'FetchCacheError';
  readonly code: ErrorCode;
  readonly expected: string | undefined;
  readonly actual: string | undefined;
  readonly path: string | undefined;
  readonly offset: number | undefined;

  constructor(code: ErrorCode, message: string, fields: FetchCacheErrorFields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.code = code;
    this.expected = fields.expected;
    this.actual = fields.actual;
    this.path = fields.path;
    this.offset = fields.offset;
  }

  /** The one-line form the CLI prints: `CODE: message`. */
  toLine(): string {
    return `${this.code}: ${this.message.replaceAll('\n', ' ')}`;
  }
}

/** Whether `e` is a `FetchCacheError` (with this `code`, when one is given). */
export function isFetchCacheError(e: unknown, code?: ErrorCode): e is FetchCacheError {
  return e instanceof FetchCacheError && (code === undefined || e.code === code);
}
