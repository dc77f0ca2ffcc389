/**
 * Blocking output of NAR pieces to a file descriptor that is a regular file, a pipe or a character
 * device other than a terminal (`fetch-cache nar > file`, `| consumer`, `> /dev/null`): bytes with
 * write(2), runs of file segments with sendfile(2) from the pack files (the addon's file-sending
 * capability, src/native/index.ts), so
 * the contents of large files never pass through JavaScript. A command-line run has nothing else to
 * do meanwhile, so it blocks; a non-blocking pipe is waited for with poll(2). An output opened for
 * appending refuses sendfile (EINVAL): its segments are then copied with pread/write.
 */

import { fstatSync, readSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { isatty } from 'node:tty';
import { getSystemErrorName } from 'node:util';
import type { SegmentRun } from '../blob/capabilities.js';
import { FetchCacheError } from '../errors.js';
import { type FileSending, fileSending } from '../native/index.js';

const { EAGAIN, EINVAL } = constants.errno;

export interface FdSink {
  write(bytes: Uint8Array): void;
  send(run: SegmentRun): void;
}

/** A sink over `fd`, or `undefined` when it is a terminal, a socket, or sendfile is not built. */
export function fdSink(fd: number, env: NodeJS.ProcessEnv = process.env): FdSink | undefined {
  if (env.FETCH_CACHE_NO_SENDFILE === '1') return undefined;
  const native = fileSending(env);
  if (native === undefined) return undefined;
  let st: ReturnType<typeof fstatSync>;
  try {
    st = fstatSync(fd);
  } catch {
    return undefined;
  }
  if (!(st.isFile() || st.isFIFO() || (st.isCharacterDevice() && !isatty(fd)))) return undefined;
  return new BlockingSink(fd, native);
}

class BlockingSink implements FdSink {
  private copy = false;
  private scratch: Buffer | undefined;

  constructor(
    private readonly fd: number,
    private readonly native: FileSending,
  ) {}

  write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) {
      try {
        done += writeSync(this.fd, bytes, done, bytes.length - done);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw stdoutError(e);
        this.native.pollOut(this.fd);
      }
    }
  }

  send(run: SegmentRun): void {
    for (const seg of run.segments) {
      let offset = seg.offset;
      let left = seg.length;
      while (left > 0) {
        if (this.copy) {
          const n = this.copyOut(seg.fd, offset, left);
          offset += n;
          left -= n;
          continue;
        }
        const sent = this.native.sendFile(this.fd, seg.fd, offset, left);
        if (sent > 0) {
          offset += sent;
          left -= sent;
        } else if (sent === -EAGAIN) this.native.pollOut(this.fd);
        else if (sent === -EINVAL && left === seg.length)
          this.copy = true; // O_APPEND
        else if (sent === 0) throw new FetchCacheError('ERR_IO', 'a pack file ended before a chunk it holds');
        else throw stdoutError({ errno: sent, message: `sendfile failed (errno ${-sent})` });
      }
    }
  }

  private copyOut(fd: number, offset: number, left: number): number {
    this.scratch ??= Buffer.allocUnsafeSlow(1 << 20);
    const n = readSync(fd, this.scratch, 0, Math.min(left, this.scratch.length), offset);
    if (n === 0) throw new FetchCacheError('ERR_IO', 'a pack file ended before a chunk it holds');
    this.write(this.scratch.subarray(0, n));
    return n;
  }
}

/** A failed write to stdout, one line: `cannot write to stdout: EPIPE (broken pipe)`. */
export function stdoutError(e: unknown): FetchCacheError {
  const errno = (e as { errno?: number }).errno;
  const code = (e as { code?: string }).code;
  const name =
    typeof code === 'string' && code !== '' ? code : errno === undefined ? undefined : systemErrorName(errno);
  const why =
    name === undefined ? (e as Error).message : `${name}${name === 'EPIPE' ? ' (the reader went away)' : ''}`;
  return new FetchCacheError('ERR_IO', `cannot write to stdout: ${why}`);
}

function systemErrorName(errno: number): string | undefined {
  try {
    return getSystemErrorName(errno < 0 ? errno : -errno);
  } catch {
    return undefined;
  }
}
