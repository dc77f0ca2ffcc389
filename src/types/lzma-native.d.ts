/** The part of `lzma-native` (no bundled types) that fetch-cache uses: a streaming xz/lzma decoder. */
declare module 'lzma-native' {
  import type { Transform } from 'node:stream';

  /** An auto-detecting (.xz / .lzma) streaming decoder. */
  export function createDecompressor(options?: Record<string, unknown>): Transform;
}
