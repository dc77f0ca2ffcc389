/**
 * Sending stored file bytes to a client socket with sendfile(2) (src/native/send-file.cc): the
 * kernel copies from the page cache to the socket, so the bytes of a large file never enter the
 * JavaScript heap. Used by nar.ts for whole-NAR responses on plain (TCP or unix) sockets; everything else (a
 * Range, a store or build without the addon) takes the byte path, which sends the same bytes.
 *
 * Order on the socket: before each run of segments every byte written through the response must
 * have left Node (the last write's callback ran and nothing is queued in the stream or in libuv);
 * then the run goes out with sendfile on a dup of the socket's descriptor, and only after it the
 * next bytes are written through the response again. The socket's idle timer (server.timeout) is
 * re-armed on progress, as a write through Node would; a client that stops reading is cut off by
 * it like on the byte path, which aborts the wait here.
 */

import type { Socket } from 'node:net';
import { constants } from 'node:os';
import type { SegmentRun } from '../blob/service.js';
import { type FileSending, fileSending, type Poller } from '../native/index.js';

const { EAGAIN, EINTR, EPIPE, ECONNRESET } = constants.errno;

/** A sender over one socket, or `undefined` when sendfile cannot be used on it. */
export function fileSender(
  socket: Socket | null | undefined,
  env: NodeJS.ProcessEnv = process.env,
): FileSender | undefined {
  if (env.FETCH_CACHE_NO_SENDFILE === '1') return undefined;
  const native = fileSending(env);
  if (native === undefined) return undefined;
  if (socket == null || (socket as { encrypted?: boolean }).encrypted === true) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  return new FileSender(socket, fd, native);
}

export class FileSender {
  private poller: Poller | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly fd: number,
    private readonly native: FileSending,
  ) {}

  /** True when nothing written through Node is still waiting to go out on the socket. */
  flushed(): boolean {
    const s = this.socket as Socket & { _handle?: { writeQueueSize?: number } };
    return s.writableLength === 0 && (s._handle?.writeQueueSize ?? 0) === 0;
  }

  /**
   * Send every segment of `run` (the caller releases it). Resolves `false` when the client left (the
   * connection reset or closed, or `signal` fired), throws when a send fails otherwise (a truncated
   * file): the caller destroys the response either way.
   */
  async send(run: SegmentRun, signal: AbortSignal): Promise<boolean> {
    const n = this.native;
    this.poller ??= n.pollWritable(this.fd);
    const poller = this.poller;
    for (const seg of run.segments) {
      let offset = seg.offset;
      let left = seg.length;
      while (left > 0) {
        if (signal.aborted || this.socket.destroyed) return false;
        const sent = n.sendFile(poller, seg.fd, offset, left);
        if (sent > 0) {
          offset += sent;
          left -= sent;
          this.touch();
          continue;
        }
        if (sent === -EAGAIN) {
          // A poll error is the connection failing (the peer reset it): the client left.
          if ((await this.writable(poller, signal)) < 0) return false;
          continue;
        }
        if (sent === -EINTR) continue;
        if (sent === -EPIPE || sent === -ECONNRESET) return false;
        if (sent === 0)
          throw Object.assign(new Error('stored file ended before its segment'), { code: 'ERR_IO' });
        throw Object.assign(new Error(`sendfile failed (errno ${-sent})`), { code: 'ERR_IO', errno: -sent });
      }
    }
    return true;
  }

  /** Stop watching the socket and close the dup (the connection closes only when every descriptor is). */
  close(): void {
    if (this.poller !== undefined) this.native.closePoller(this.poller);
    this.poller = undefined;
  }

  private touch(): void {
    const timeout = this.socket.timeout;
    if (timeout !== undefined && timeout > 0) this.socket.setTimeout(timeout);
  }

  private writable(poller: Poller, signal: AbortSignal): Promise<number> {
    return new Promise((resolve) => {
      const onAbort = () => {
        // Closing the poller stops the wait; its callback never runs.
        this.close();
        resolve(0);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.socket.once('close', onAbort);
      this.native.waitWritable(poller, (status) => {
        signal.removeEventListener('abort', onAbort);
        this.socket.off('close', onAbort);
        resolve(status);
      });
    });
  }
}
