/**
 * The part of `unbzip2-stream` (no bundled types) that fetch-cache uses: a
 * classic `through` stream that decodes bzip2. It emits `data` and `error`
 * synchronously from `write()` and `end()`.
 */
declare module 'unbzip2-stream' {
  import type { EventEmitter } from 'node:events';

  interface Bunzip2Stream extends EventEmitter {
    write(chunk: Uint8Array): boolean;
    end(): void;
  }

  export default function unbzip2Stream(): Bunzip2Stream;
}
