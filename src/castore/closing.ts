/**
 * Blobs whose bytes are all written and whose `close()` is still running:
 * the last chunk and the chunk list wait in the blob service's group commit
 * (src/storage/group-commit.ts) for a database batch, or for a pack object
 * of a remote store. A source that reads files one after another (an
 * archive) or a few at a time (a local tree) goes on reading while they
 * close, bounded by their bytes (32 MiB, each blob
 * counted as at least 512 bytes) and their number (`maxBlobs`: the blob
 * service's `closingBlobs`, default 256). An object store's group commit
 * fills its packs from small files only when thousands can wait in it: with
 * 32 closes at a time an S3 pack held ~100 KiB of a source tree (10,000 PUTs
 * per GiB), and a lingering group waited for files that could not come. Each
 * closing blob costs ~10 KiB of heap besides its bytes, so a local store
 * asks for few.
 */

/** What a closing blob counts at least (its writer, its node, its puts). */
const BLOB_OVERHEAD = 512;
/** Bytes of blobs closing at once. */
const BUDGET_BYTES = 32 << 20;

export class ClosingBlobs {
  private readonly maxBlobs: number;
  private bytes = 0;
  private count = 0;
  private waiters: (() => void)[] = [];

  /** `maxBlobs`: blobs closing at once (default 256; `BlobService.closingBlobs` says how many). */
  constructor(maxBlobs: number | undefined) {
    this.maxBlobs = maxBlobs ?? 256;
  }

  /** Resolves when another blob may start: the closing ones are below both bounds. */
  async room(): Promise<void> {
    while (this.bytes >= BUDGET_BYTES || this.count >= this.maxBlobs)
      await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Counts `closing`, the close of a blob of `size` bytes, until it settles; returns it. */
  add<T>(size: number, closing: Promise<T>): Promise<T> {
    const cost = Math.max(size, BLOB_OVERHEAD);
    this.bytes += cost;
    this.count++;
    const done = () => {
      this.bytes -= cost;
      this.count--;
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    };
    closing.then(done, done);
    return closing;
  }
}
