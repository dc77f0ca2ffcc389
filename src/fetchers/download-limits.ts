/**
 * The two download limits every download client (http.ts) applies, as the
 * environment and the CLI spell them: Nix's `stalled-download-timeout` in
 * whole seconds, and an optional size cap as a byte count. Kept apart from
 * http.ts so the CLI can check them without loading the download client.
 */

export const STALLED_DOWNLOAD_TIMEOUT_ENV = 'FETCH_CACHE_STALLED_DOWNLOAD_TIMEOUT';
export const MAX_DOWNLOAD_SIZE_ENV = 'FETCH_CACHE_MAX_DOWNLOAD_SIZE';
export const DEFAULT_STALLED_DOWNLOAD_TIMEOUT_MS = 300_000;

/** Whole seconds (`0` = off) as milliseconds; a TypeError for anything else. */
export function parseStalledDownloadTimeout(text: string): number {
  if (!/^\d+$/.test(text.trim())) {
    throw new TypeError(`a stalled-download timeout is whole seconds (0 = none), not '${text}'`);
  }
  return Number(text.trim()) * 1000;
}

/** A byte count like `500000000`, `500M` or `2G` (powers of 1024); a TypeError for anything else. */
export function parseByteCount(text: string): number {
  const m = /^(\d+)([KMGT]i?B?|B)?$/i.exec(text.trim());
  if (m === null) throw new TypeError(`a size is a byte count like 500000000, 500M or 2G, not '${text}'`);
  const unit = (m[2] ?? '').toUpperCase().replace(/I?B$/, '');
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[unit] ?? 1;
  return Number(m[1]) * scale;
}
