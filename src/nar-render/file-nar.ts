/**
 * The NAR sum of a single regular file, computed from its bytes as they
 * stream into the store (a file's NAR is its framing and its bytes), so no
 * second pass renders it back from the store.
 */

import { createHasher } from '../nix/hashing.js';
import { NarEncoder } from '../nix/nar/encoder.js';
import type { NarSum } from './nar-calc.js';

/**
 * The NAR sum of a single file of `size` bytes, fed its bytes as they pass; `finish()` is `undefined`
 * when they were not `size` bytes.
 */
export class FileNar {
  private readonly hasher = createHasher('sha256');
  private narSize = 0;
  private left: number;
  private readonly enc = new NarEncoder(
    (c) => {
      this.hasher.update(c);
      this.narSize += c.length;
    },
    { lendBuffer: true },
  );

  constructor(executable: boolean, size: number) {
    this.left = size;
    this.enc.regular(executable, size);
  }

  update(chunk: Uint8Array): void {
    if (chunk.length === 0 || this.left < 0) return;
    if (chunk.length > this.left) {
      this.left = -1;
      return;
    }
    this.left -= chunk.length;
    this.enc.contents(chunk);
  }

  finish(): NarSum | undefined {
    if (this.left !== 0) return undefined;
    this.enc.finish();
    return { narSha256: this.hasher.digest(), narSize: this.narSize };
  }
}
