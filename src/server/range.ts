/**
 * `Range: bytes=…` for NAR downloads (RFC 9110 §14). One range is served as
 * 206 with `Content-Range: bytes first-last/size`; a range starting at or past
 * the end is 416 with `bytes *\/size`. Several ranges, other units and
 * malformed headers are ignored (a full 200), as the RFC allows, so a client
 * never gets a multipart body it did not expect. `If-Range` with a different
 * validator also means the full body.
 */

export type RangeAnswer =
  | { readonly kind: 'full' }
  | { readonly kind: 'partial'; readonly start: number; readonly end: number }
  | { readonly kind: 'unsatisfiable' };

const FULL: RangeAnswer = { kind: 'full' };

/** `end` is inclusive, as in the header. */
export function parseRange(
  header: string | undefined,
  size: number,
  ifRange?: string,
  etag?: string,
): RangeAnswer {
  if (header === undefined) return FULL;
  if (ifRange !== undefined && ifRange !== etag) return FULL;
  const m = /^bytes=[ \t]*(\d*)-(\d*)[ \t]*$/.exec(header);
  if (m === null) return FULL;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return FULL;
  if (a.length > 15 || b.length > 15) return a === '' ? FULL : { kind: 'unsatisfiable' };
  if (a === '') {
    // Suffix range: the last N bytes.
    const n = Number(b);
    if (n === 0) return { kind: 'unsatisfiable' };
    return size === 0
      ? { kind: 'unsatisfiable' }
      : { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (b !== '' && Number(b) < start) return FULL;
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}
