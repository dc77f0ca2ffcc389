/**
 * Sending stored file bytes to a client socket with sendfile(2), through the addon's file-sending
 * capability (send-file.cc, loaded by index.ts): the kernel copies from the page cache to the
 * socket, so the bytes of a large file never enter the JavaScript heap. `serve` (src/server/nar.ts)
 * asks for a sender for whole NARs on plain (TCP or unix) sockets and streams the bytes itself when
 * it gets none (a build without the addon, TLS); both send the same bytes.
 *
 * Order on the socket: the caller hands a run of segments over only once its own writes before it
 * completed (their callbacks ran); the sender then waits until nothing is queued in the socket's
 * stream or in libuv either, sends the run with sendfile on a dup of the socket's descriptor, and
 * only after it the caller writes through the response again. The socket's idle timer
 * (server.timeout) is re-armed on progress, as a write through Node would; a client that stops
 * reading is cut off by it like on the byte path, which aborts the wait here.
 *
 * This is the one module that looks at Node's socket internals (`_handle.fd`, `writeQueueSize`).
 */

import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { type FileSending, fileSending, type Poller } from './index.js';

const { EAGAIN, EINTR, EPIPE, ECONNRESET } = constants.errno;

/** `length` bytes at `offset` of the open file `fd`. */
export interface FileRange {
  readonly fd: number;
  readonly offset: number;
  readonly length: number;
}

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

  /**
   * Send every range, in order, after everything written through Node has left it. Resolves `false`
   * when the client left (the connection reset or closed, or `signal` fired), throws when a send
   * fails otherwise (a truncated file): the caller destroys the response either way.
   */
  async send(ranges: readonly FileRange[], signal: AbortSignal): Promise<boolean> {
    // A completed write can leave libuv's queue a moment later: never interleave with it.
    while (!this.flushed()) {
      if (signal.aborted || this.socket.destroyed) return false;
      await new Promise(setImmediate);
    }
    const n = this.native;
    this.poller ??= n.pollWritable(this.fd);
    const poller = this.poller;
    for (const range of ranges) {
      let offset = range.offset;
      let left = range.length;
      while (left > 0) {
        if (signal.aborted || this.socket.destroyed) return false;
        const sent = n.sendFile(poller, range.fd, offset, left);
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

  /** True when nothing written through Node is still waiting to go out on the socket. */
  private flushed(): boolean {
    const s = this.socket as Socket & { _handle?: { writeQueueSize?: number } };
    return s.writableLength === 0 && (s._handle?.writeQueueSize ?? 0) === 0;
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
