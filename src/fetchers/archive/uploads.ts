/**
 * File contents of an archive, stored as blobs with a little overlap: a
 * member's bytes must be read before the next member's (the archive is one
 * stream), but finishing its blob can run while the following members are
 * read, as many at once as castore/closing.ts allows. The tree gets a
 * `BlobRef` at once, in archive order, and the ref is filled in when the
 * blob is stored.
 */

import type { BlobService } from '../../blob/service.js';
import { ClosingBlobs } from '../../castore/closing.js';
import { writeContents } from '../../castore/ingest.js';
import type { BlobRef } from './tree.js';

export class BlobUploads {
  private readonly closing: ClosingBlobs;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(private readonly blobs: BlobService) {
    this.closing = new ClosingBlobs(blobs.closingBlobs);
  }

  /**
   * Stream `contents` into a new blob; returns `ref` (a new one by default) once they are consumed. The
   * ref is filled in when the blob is stored. One upload at a time: await each before the next.
   */
  async upload(contents: AsyncIterable<Uint8Array>, ref: BlobRef = { value: undefined }): Promise<BlobRef> {
    this.throwIfFailed();
    await this.closing.room();
    const { writer, size } = await writeContents(this.blobs.writer(), contents);
    const closing = this.closing
      .add(size, writer.close())
      .then((stored) => {
        ref.value = stored;
      })
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.inFlight.delete(closing));
    this.inFlight.add(closing);
    return ref;
  }

  /** Wait for every blob; throws the first failure. Call it in `finally` too: nothing is left running. */
  async settle(): Promise<void> {
    await Promise.all([...this.inFlight]);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }
}
