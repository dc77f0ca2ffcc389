/**
 * `/nar/<NarHash nix32>.nar[.ext]`. GET/HEAD find the path through the NAR-hash
 * index and stream `renderNar` with a Content-Length; a Range starts the
 * render at its offset (no bytes before it are produced or read) and is
 * answered 206 without any Content-Encoding. Renders beyond the limiter's cap
 * queue or get 503. HEAD also answers for uploads still waiting for their
 * narinfo, so Nix does not send the same NAR twice. PUT (upload token only)
 * ingests a NAR file (upload.ts). Compressed names are never served: the
 * narinfo always says `Compression: none`. A whole NAR goes out with
 * `Content-Encoding: zstd` when the client accepts it and it pays off
 * (zstd.ts); gzip/br cost more CPU than they save on the networks a fetch
 * cache usually serves, and are not offered. From before it queues for a render
 * slot until its last byte, a GET holds its path (path-use.ts) so that
 * `gc --max-size` never evicts a path while it is being served. NARs up to
 * the NAR cache's item size are rendered whole into memory once and then
 * served (whole or as a Range slice) from there (nar-cache.ts); the lookup
 * in the NAR-hash index stays in front, so a path gc deleted is never served.
 * A larger whole NAR on a plain socket sends the contents of its files of
 * 1 MiB or more with sendfile(2) from the pack files, each chunk verified
 * first (src/native/send-file.ts, `renderNarPieces`); a Range, or a build without the
 * native addon, takes the byte path, which sends the same bytes.
 */

import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { SegmentRun } from '../blob/capabilities.js';
import { renderNar, renderNarPieces } from '../nar-render/render.js';
import { type FileSender, fileSender } from '../native/send-file.js';
import { encodeNix32 } from '../nix/nixbase32.js';
import type { PathInfo } from '../pathinfo/path-info.js';
import { HttpError, NO_STORE, type RequestContext, sendBody } from './http.js';
import { describeError } from './log.js';
import { holdServed, touchServed } from './path-use.js';
import { parseRange } from './range.js';
import type { ServerServices } from './services.js';
import { NAR_EXTENSIONS, parseNarName, receiveNar, uploadTooLarge } from './upload.js';
import { acceptsZstd, compresses, SAMPLE_BYTES, ZSTD_MIN_BYTES } from './zstd.js';

export const NAR_CONTENT_TYPE = 'application/x-nix-nar';

/** Pieces smaller than this are gathered before writing. */
const WRITE_BATCH = 128 * 1024;
/** A batch whose pieces average less than this is copied into one buffer; larger pieces go out as they are. */
const GATHER_BELOW = 8 * 1024;

async function storedByNarHash(s: ServerServices, narSha256: Uint8Array): Promise<PathInfo | undefined> {
  const holder = await s.store.pathInfos.byNarHash(narSha256);
  return holder === undefined ? undefined : s.store.pathInfos.get(holder);
}

export async function getNar(ctx: RequestContext, s: ServerServices): Promise<void> {
  const [name = '', ext = ''] = ctx.params;
  const hash = parseNarName(name);
  if (NAR_EXTENSIONS[ext] === undefined) throw new HttpError(404, 'no such NAR file');
  if (ext !== '') {
    // Only ever a pending upload (HEAD before PUT); this cache serves uncompressed NARs.
    if (ctx.head && (await s.uploads.byFileHash(hash)) !== undefined) {
      sendBody(ctx, 200, NAR_CONTENT_TYPE, '', { 'Cache-Control': NO_STORE });
      return;
    }
    throw new HttpError(404, 'no such NAR file');
  }
  const found = await storedByNarHash(s, hash);
  if (found === undefined) {
    const pending = ctx.head ? await s.uploads.byFileHash(hash) : undefined;
    if (pending !== undefined) {
      ctx.res.writeHead(200, {
        'Content-Type': NAR_CONTENT_TYPE,
        'Content-Length': String(pending.narSize),
        'Cache-Control': NO_STORE,
      });
      ctx.res.end();
      return;
    }
    throw new HttpError(404, `no NAR with hash ${name} in this cache`);
  }
  const response = narResponse(ctx, found, s.zstd !== undefined);
  if (ctx.head) {
    ctx.res.writeHead(response.status, response.headers);
    ctx.res.end();
    return;
  }
  if (found.narSize <= s.narCache.maxItemBytes) {
    // A Range is a slice of a cached NAR, but never renders the whole NAR (it renders from its offset).
    const whole =
      response.length === found.narSize
        ? await s.narCache.getOrLoad(name, found.narSize, () => renderWhole(s, found, hash))
        : s.narCache.get(name);
    if (whole !== undefined) {
      touchServed(s, found.storePath.digest);
      const sendWhole = async () => {
        ctx.res.writeHead(response.status, response.headers);
        ctx.bytesSent += response.length;
        ctx.res.end(whole.subarray(response.start, response.start + response.length));
      };
      if (await zstdPays(ctx, s, found, name, response, async () => whole.subarray(0, SAMPLE_BYTES))) {
        await sendZstd(
          ctx,
          s,
          found,
          name,
          async function* () {
            yield whole;
          },
          sendWhole,
        );
        return;
      }
      await sendWhole();
      return;
    }
  }
  const unhold = await holdServed(s, found.storePath.digest);
  try {
    // A gc may have evicted the path between the lookup and the hold; a held path stays.
    if ((await storedByNarHash(s, hash)) === undefined)
      throw new HttpError(404, `no NAR with hash ${name} in this cache`);
    if (await zstdPays(ctx, s, found, name, response, () => narSample(s, found))) {
      await sendZstd(
        ctx,
        s,
        found,
        name,
        () => renderNar(found.node, s.store, 0),
        async (signal) => {
          ctx.res.writeHead(response.status, response.headers);
          await streamNar(ctx, s, found, 0, found.narSize, signal);
        },
      );
      return;
    }
    await sendNar(ctx, s, found, response);
  } finally {
    await unhold();
  }
}

/**
 * The whole NAR in memory, for the NAR cache (nar-cache.ts): rendered under a
 * hold and a render slot like a streamed one; `undefined` if a gc took the
 * path meanwhile (the streaming path then answers 404).
 */
async function renderWhole(s: ServerServices, info: PathInfo, hash: Uint8Array): Promise<Buffer | undefined> {
  const unhold = await holdServed(s, info.storePath.digest);
  try {
    if ((await storedByNarHash(s, hash)) === undefined) return undefined;
    const release = await s.renders.acquire();
    try {
      const out = Buffer.allocUnsafe(info.narSize);
      let at = 0;
      for await (const chunk of renderNar(info.node, s.store, 0)) {
        if (at + chunk.length > out.length) throw new Error('NAR render ran past its NarSize');
        out.set(chunk, at);
        at += chunk.length;
      }
      if (at !== out.length)
        throw new Error(`NAR render ended ${out.length - at} bytes short of its NarSize`);
      return out;
    } finally {
      release();
    }
  } finally {
    await unhold();
  }
}

interface NarResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** The byte range of the NAR to send. */
  readonly start: number;
  readonly length: number;
}

/** Status and headers of a GET of this NAR (200, or 206 for a Range); 416 for an unsatisfiable Range. */
function narResponse(ctx: RequestContext, info: PathInfo, varies: boolean): NarResponse {
  const size = info.narSize;
  const etag = `"${encodeNix32(info.narSha256)}"`;
  const ifRange = ctx.req.headers['if-range'];
  const range = parseRange(
    ctx.req.headers.range,
    size,
    typeof ifRange === 'string' ? ifRange : undefined,
    etag,
  );
  const common: Record<string, string> = {
    'Content-Type': NAR_CONTENT_TYPE,
    'Accept-Ranges': 'bytes',
    ETag: etag,
    'Cache-Control': 'public, max-age=31536000, immutable',
    // With zstd on, a whole NAR's encoding depends on Accept-Encoding: caches must keep them apart.
    ...(varies ? { Vary: 'Accept-Encoding' } : {}),
  };
  if (range.kind === 'unsatisfiable') {
    throw new HttpError(416, `range not satisfiable for a ${size}-byte NAR`, {
      'Content-Range': `bytes */${size}`,
    });
  }
  const start = range.kind === 'partial' ? range.start : 0;
  const length = range.kind === 'partial' ? range.end - range.start + 1 : size;
  const status = range.kind === 'partial' ? 206 : 200;
  const headers: Record<string, string> = { ...common, 'Content-Length': String(length) };
  if (range.kind === 'partial') headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
  return { status, headers, start, length };
}

async function sendNar(
  ctx: RequestContext,
  s: ServerServices,
  info: PathInfo,
  r: NarResponse,
): Promise<void> {
  await sendStreamed(ctx, s, async (signal) => {
    ctx.res.writeHead(r.status, r.headers);
    await streamNar(ctx, s, info, r.start, r.length, signal);
  });
}

/**
 * A streamed response under a render slot: `body` writes the head and the bytes, and stops when
 * the signal fires (the client left). A failure once the head is out can only truncate the body.
 */
async function sendStreamed(
  ctx: RequestContext,
  s: ServerServices,
  body: (signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const abort = new AbortController();
  const onClose = () => abort.abort();
  ctx.res.once('close', onClose);
  // A client that left while the path was being looked up or held closed before the listener was on.
  if (ctx.res.destroyed || ctx.req.socket?.destroyed === true) abort.abort();
  let release: (() => void) | undefined;
  try {
    release = await s.renders.acquire(abort.signal);
  } catch (e) {
    ctx.res.off('close', onClose);
    if (e instanceof HttpError) throw e;
    return; // the client left while queued
  }
  try {
    await body(abort.signal);
  } catch (e) {
    // Headers are out: the only honest signal left is a truncated body.
    s.log.log('error', 'NAR render failed', { path: ctx.path, error: describeError(e) });
    ctx.res.destroy();
  } finally {
    ctx.res.off('close', onClose);
    release();
  }
}

/**
 * Whether this GET gets the zstd-encoded NAR (zstd.ts): accepted, whole, large enough, and
 * compressible (decided on its first bytes once per NAR; `sample` renders them).
 */
async function zstdPays(
  ctx: RequestContext,
  s: ServerServices,
  info: PathInfo,
  name: string,
  response: NarResponse,
  sample: () => Promise<Uint8Array>,
): Promise<boolean> {
  const zstd = s.zstd;
  if (zstd === undefined || response.status !== 200 || info.narSize < ZSTD_MIN_BYTES) return false;
  if (!acceptsZstd(ctx.req.headers['accept-encoding'])) return false;
  let pays = zstd.verdict(name);
  if (pays === undefined) {
    pays = compresses(await sample());
    zstd.remember(name, pays);
  }
  return pays;
}

/** The first SAMPLE_BYTES of the NAR (fewer when it is shorter). */
async function narSample(s: ServerServices, info: PathInfo): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let got = 0;
  for await (const c of renderNar(info.node, s.store, 0)) {
    parts.push(c);
    got += c.length;
    if (got >= SAMPLE_BYTES) break;
  }
  return Buffer.concat(parts, got).subarray(0, SAMPLE_BYTES);
}

/**
 * The NAR through a `zstd` child process, as `Content-Encoding: zstd` with chunked transfer (the
 * encoded size is not known ahead). No encoder slot free, or an encoder that does not start: the
 * identity response (`identity`) instead. The child is killed when the client leaves or the
 * render fails; an encoder that fails truncates the body.
 */
async function sendZstd(
  ctx: RequestContext,
  s: ServerServices,
  info: PathInfo,
  name: string,
  source: () => AsyncIterable<Uint8Array>,
  identity: (signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const zstd = s.zstd!;
  const slot = zstd.acquire();
  if (slot === undefined) {
    await sendStreamed(ctx, s, identity);
    return;
  }
  try {
    await sendStreamed(ctx, s, async (signal) => {
      const child = spawn(zstd.command, ['-q', '-c', `-${zstd.level}`], {
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      const started = await new Promise<Error | undefined>((resolve) => {
        child.once('spawn', () => resolve(undefined));
        child.once('error', resolve);
      });
      if (started !== undefined) {
        s.log.log('warn', 'zstd encoder did not start; sending the NAR unencoded', {
          command: zstd.command,
          error: describeError(started),
        });
        await identity(signal);
        return;
      }
      const encoded = await encodeThrough(ctx, info, child, source(), signal);
      // What the whole NAR came to decides the next requests (the sample only guessed).
      if (encoded !== undefined) zstd.learn(name, encoded, info.narSize);
    });
  } finally {
    slot();
  }
}

async function encodeThrough(
  ctx: RequestContext,
  info: PathInfo,
  child: ChildProcessByStdio<Writable, Readable, null>,
  source: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
): Promise<number | undefined> {
  const res = ctx.res;
  const kill = () => child.kill('SIGKILL');
  signal.addEventListener('abort', kill, { once: true });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  child.stdin.on('error', () => {}); // EPIPE once the child is gone: its exit status says why
  try {
    res.writeHead(200, {
      'Content-Type': NAR_CONTENT_TYPE,
      'Content-Encoding': 'zstd',
      Vary: 'Accept-Encoding',
      ETag: `"${encodeNix32(info.narSha256)}-zstd"`,
      'Cache-Control': 'public, max-age=31536000, immutable',
    });
    let encoded = 0;
    const output = (async () => {
      for await (const c of child.stdout as AsyncIterable<Buffer>) {
        if (signal.aborted) return;
        encoded += c.length;
        ctx.bytesSent += c.length;
        if (!res.write(c)) await drained(res, signal);
      }
    })();
    output.catch(() => {});
    let fed = 0;
    for await (const chunk of source) {
      if (signal.aborted) return undefined;
      fed += chunk.length;
      if (!child.stdin.write(chunk)) await drained(child.stdin, signal);
    }
    child.stdin.end();
    if (fed !== info.narSize) throw new Error(`NAR render gave ${fed} bytes, its NarSize is ${info.narSize}`);
    await output;
    const code = await exited;
    if (signal.aborted) return undefined;
    if (code !== 0) throw new Error(`zstd exited with status ${code}`);
    res.end();
    return encoded;
  } finally {
    signal.removeEventListener('abort', kill);
    if (child.exitCode === null && child.signalCode === null) kill();
  }
}

async function streamNar(
  ctx: RequestContext,
  s: ServerServices,
  info: PathInfo,
  start: number,
  length: number,
  signal: AbortSignal,
): Promise<void> {
  // A whole NAR on a plain socket sends large files with sendfile(2) (src/native/send-file.ts); a Range, TLS, or
  // a build without the native addon takes the byte path below.
  const sender =
    start === 0 && length === info.narSize && s.store.capabilities.fileSegments !== undefined
      ? fileSender(ctx.req.socket)
      : undefined;
  if (sender !== undefined) {
    try {
      await streamNarPieces(ctx, s, info, sender, signal);
    } finally {
      sender.close();
    }
    return;
  }
  const res = ctx.res;
  let remaining = length;
  // Small pieces (tokens, small files) are gathered into one write: a syscall per file would dominate.
  let batch: Uint8Array[] = [];
  let batched = 0;
  const flush = async () => {
    if (batched === 0) return;
    const pieces = batch;
    const bytes = batched;
    batch = [];
    batched = 0;
    let ok: boolean;
    if (pieces.length === 1) ok = res.write(pieces[0]!);
    else if (bytes / pieces.length < GATHER_BELOW) ok = res.write(Buffer.concat(pieces, bytes));
    else {
      // Chunks of a large file: one writev of them all, no copy.
      res.cork();
      ok = true;
      for (const p of pieces) ok = res.write(p) && ok;
      res.uncork();
    }
    if (!ok) await drained(res, signal);
  };
  for await (const chunk of renderNar(info.node, s.store, start)) {
    if (signal.aborted) return;
    const part = chunk.length > remaining ? chunk.subarray(0, remaining) : chunk;
    remaining -= part.length;
    ctx.bytesSent += part.length;
    if (part.length >= WRITE_BATCH) {
      await flush();
      if (!res.write(part)) await drained(res, signal);
    } else {
      batch.push(part);
      batched += part.length;
      if (batched >= WRITE_BATCH) await flush();
    }
    if (remaining === 0) break;
  }
  await flush();
  if (signal.aborted) return;
  if (remaining !== 0) throw new Error(`NAR render ended ${remaining} bytes short of its NarSize`);
  res.end();
}

/**
 * The whole NAR, its large files sent from the pack files with sendfile: bytes are gathered and
 * written as on the byte path; before a run of file segments they are written out and waited for,
 * so the run follows them on the socket.
 */
async function streamNarPieces(
  ctx: RequestContext,
  s: ServerServices,
  info: PathInfo,
  sender: FileSender,
  signal: AbortSignal,
): Promise<void> {
  const res = ctx.res;
  const socket = ctx.req.socket;
  let remaining = info.narSize;
  let batch: Uint8Array[] = [];
  let batched = 0;
  const take = (): Uint8Array | undefined => {
    if (batched === 0) return undefined;
    const out = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batched);
    batch = [];
    batched = 0;
    return out;
  };
  // The callback of the last write: writes complete in order, so once it ran all bytes before it left Node.
  let lastWrite: Promise<void> = Promise.resolve();
  const write = (bytes: Uint8Array): boolean => {
    let ok = true;
    lastWrite = new Promise<void>((resolve) => {
      ok = res.write(bytes, () => resolve());
    });
    return ok;
  };
  /** Every write so far completed; false when the client left meanwhile. */
  const settle = async (): Promise<boolean> => {
    const last = take();
    if (last !== undefined) write(last);
    await untilAborted(lastWrite, signal);
    return !signal.aborted && !socket.destroyed && res.socket === socket;
  };
  const sendRun = async (run: SegmentRun): Promise<boolean> => {
    try {
      let bytes = 0;
      for (const seg of run.segments) bytes += seg.length;
      if (bytes > remaining) throw new Error('NAR render ran past its NarSize');
      if (!(await settle())) return false;
      if (!(await sender.send(run.segments, signal))) return false;
      remaining -= bytes;
      ctx.bytesSent += bytes;
      return true;
    } finally {
      run.release();
    }
  };
  const pieces = renderNarPieces(info.node, s.store);
  for await (const piece of pieces) {
    if (!(piece instanceof Uint8Array)) {
      if (await sendRun(piece)) continue;
      res.destroy(); // the client left (Node may not know yet): nothing more goes out
      return;
    }
    if (signal.aborted) return;
    if (piece.length > remaining) throw new Error('NAR render ran past its NarSize');
    remaining -= piece.length;
    ctx.bytesSent += piece.length;
    batch.push(piece);
    batched += piece.length;
    if (batched >= WRITE_BATCH && !write(take()!)) await drained(res, signal);
  }
  const last = take();
  if (signal.aborted) return;
  if (remaining !== 0) throw new Error(`NAR render ended ${remaining} bytes short of its NarSize`);
  res.end(last);
}

/** `p`, or nothing once `signal` fires. */
function untilAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    p.then(done);
  });
}

/** `stream` drained, closed or failed, or the signal fired. */
function drained(stream: Writable, signal: AbortSignal): Promise<void> {
  if (signal.aborted || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function putNar(ctx: RequestContext, s: ServerServices): Promise<void> {
  const [name = '', ext = ''] = ctx.params;
  const fileHash = parseNarName(name);
  const max = s.config.maxUploadBytes;
  if (Number(ctx.req.headers['content-length'] ?? 0) > max) throw uploadTooLarge('the uploaded file', max);
  const pending = await receiveNar(ctx.req, fileHash, ext, s.store, max);
  await s.uploads.add(pending);
  s.log.log('info', 'NAR uploaded', {
    nar: `nar/${name}.nar${ext}`,
    narSize: pending.narSize,
    fileSize: pending.fileSize,
  });
  sendBody(ctx, 200, 'text/plain; charset=utf-8', 'ok\n', { 'Cache-Control': NO_STORE });
}
