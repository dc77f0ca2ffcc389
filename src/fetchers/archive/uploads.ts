/**
 * File contents of an archive, stored as blobs with a little overlap: a
 * member's bytes must be read before the next member's (the archive is one
 * stream), but finishing its blob (the last chunk and the chunk list, several
 * database round trips, which for small files is most of the work) can run
 * while the following members are read. At most `concurrency` blobs are
 * being finished at once; the tree gets a `BlobRef` at once, in archive
 * order, and the ref is filled in when the blob is stored. 32 at once lets
 * the blob service's group commit put about that many small files in one
 * database batch (the same figure `ingestEntries` uses).
 */

import type { BlobService } from '../../blob/service.js';
import { Semaphore } from '../../castore/ingest.js';
import type { BlobRef } from './tree.js';

export class BlobUploads {
  private readonly slots: Semaphore;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly blobs: BlobService,
    concurrency = 32,
  ) {
    this.slots = new Semaphore(concurrency);
  }

  /**
   * Stream `contents` into a new blob; returns `ref` (a new one by default) once they are consumed. The
   * ref is filled in when the blob is stored.
   */
  async upload(contents: AsyncIterable<Uint8Array>, ref: BlobRef = { value: undefined }): Promise<BlobRef> {
    this.throwIfFailed();
    await this.slots.acquire();
    const writer = this.blobs.writer();
    try {
      for await (const chunk of contents) await writer.write(chunk);
    } catch (e) {
      this.slots.release();
      await writer.abort();
      throw e;
    }
    const closing = writer
      .close()
      .then((stored) => {
        ref.value = stored;
      })
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.slots.release();
        this.inFlight.delete(closing);
      });
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
