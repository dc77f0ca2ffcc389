/**
 * Whole NARs with large files are sent from the pack files with sendfile(2) (src/native/send-file.ts):
 * over a cache root on disk, the bytes must equal the rendered NAR (and `nix-store --dump` of the
 * source, when Nix is installed) through every path the sender can take: a reader fast or slow
 * (the socket fills and the sender waits for it), keep-alive reuse of the connection afterwards, a
 * unix socket, a client that leaves mid-send, a damaged chunk (truncated body, ERR_INTEGRITY
 * logged), a client that stops reading (cut off by the idle timeout); a Range still takes the byte
 * path. Without the addon's file-sending capability (not built, not Linux, FETCH_CACHE_NO_NATIVE=1)
 * every case runs on the stream nar.ts falls back to: the same bytes, and no file segment read.
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, get, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Capabilities, SegmentRun } from '../../src/blob/capabilities.js';
import type { LevelBlobService } from '../../src/blob/leveldb.js';
import { type Cache, openCache } from '../../src/cache.js';
import { addPath } from '../../src/fs/add.js';
import { renderNar } from '../../src/nar-render/render.js';
import { fileSending } from '../../src/native/index.js';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import type { LogFields } from '../../src/server/log.js';
import { parseBind, startServer } from '../../src/server/server.js';
import { randomBytes } from '../blob/conformance.js';
import { flipChunkByte } from '../helpers/chunk-damage.js';
import { nixAvailable } from '../helpers/nix.js';
import { type Harness, rawRequest, startHarness } from './harness.js';

const BIG = 12 << 20;
let h: Harness;
let root: string;
let src: string;
let info: PathInfo;
let nar: Buffer;
/** The blob of sub/big.bin. */
let bigDigest: Uint8Array;
const logs: { level: string; msg: string; fields: LogFields | undefined }[] = [];
/** Bytes the blob service handed out as file segments (what went out with sendfile). */
let segmentBytes = 0;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fc-sendfile-'));
  src = join(root, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'a.txt'), 'hello\n');
  writeFileSync(join(src, 'sub', 'big.bin'), randomBytes(BIG, 7));
  writeFileSync(join(src, 'sub', 'mid.bin'), randomBytes(3 << 20, 8));
  writeFileSync(join(src, 'z.txt'), 'last\n');
  const cache = await openCache({ root: join(root, 'cache'), locationCache: 1 << 16 });
  info = await addPath(cache, src);
  bigDigest = await fileDigest(cache, ['sub', 'big.bin']);
  const parts: Uint8Array[] = [];
  for await (const c of renderNar(info.node, cache)) parts.push(c);
  nar = Buffer.concat(parts);
  // Count what goes out as file segments, at the store's capability (the server probes it).
  const capabilities = cache.capabilities as { -readonly [K in keyof Capabilities]: Capabilities[K] };
  const fileSegments = capabilities.fileSegments!;
  capabilities.fileSegments = async (digest) => {
    const runs = await fileSegments(digest);
    if (runs === undefined) return undefined;
    return (async function* () {
      for await (const run of runs as AsyncIterable<SegmentRun>) {
        for (const s of run.segments) segmentBytes += s.length;
        yield run;
      }
    })();
  };
  h = await startHarness({
    cache,
    // No NAR is small enough for the in-memory NAR cache: every GET streams.
    narCache: { maxItemBytes: 0 },
    log: {
      log: (level, msg, fields) => logs.push({ level, msg, fields }),
      wants: () => true,
    },
    timeouts: { idleMs: 1500 },
  });
}, 60_000);

afterAll(async () => {
  await h?.close();
  rmSync(root, { recursive: true, force: true });
});

const narPath = () => `/nar/${encodeNix32(info.narSha256)}.nar`;

function errorsLogged(): string[] {
  return logs.filter((l) => l.level === 'error').map((l) => `${l.msg}: ${String(l.fields?.error)}`);
}

/** GET through `agent`, reading with `pauseMs` pauses after every `pauseEvery` bytes. */
function download(
  agent: Agent | false,
  target: string,
  opts: { pauseEvery?: number; pauseMs?: number; stopAfter?: number } = {},
): Promise<{ res: IncomingMessage; body: Buffer; complete: boolean; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port: h.port, path: target, agent }, (res) => {
      const parts: Buffer[] = [];
      let got = 0;
      let sincePause = 0;
      res.on('data', (c: Buffer) => {
        parts.push(c);
        got += c.length;
        sincePause += c.length;
        if (opts.stopAfter !== undefined && got >= opts.stopAfter) {
          req.destroy();
          resolve({ res, body: Buffer.concat(parts), complete: false, reused: req.reusedSocket });
          return;
        }
        if (opts.pauseEvery !== undefined && sincePause >= opts.pauseEvery) {
          sincePause = 0;
          res.pause();
          setTimeout(() => res.resume(), opts.pauseMs ?? 20);
        }
      });
      res.on('end', () =>
        resolve({ res, body: Buffer.concat(parts), complete: res.complete, reused: req.reusedSocket }),
      );
      res.on('aborted', () =>
        resolve({ res, body: Buffer.concat(parts), complete: false, reused: req.reusedSocket }),
      );
      res.on('error', () =>
        resolve({ res, body: Buffer.concat(parts), complete: false, reused: req.reusedSocket }),
      );
    });
    req.on('error', reject);
  });
}

/** Whether whole NARs go out with sendfile here (else nar.ts streams them). */
const sending = fileSending() !== undefined;
/** The bytes of the large files, which sendfile sends from the pack files. */
const SEGMENTED = BIG + (3 << 20);

describe(sending ? 'NARs sent with sendfile' : 'NARs streamed (no file-sending capability here)', () => {
  it('sends the whole NAR byte for byte, its large files from the pack files', async () => {
    const before = segmentBytes;
    const r = await download(false, narPath());
    expect(r.res.statusCode).toBe(200);
    expect(r.res.headers['content-length']).toBe(String(nar.length));
    expect(r.complete).toBe(true);
    expect(r.body.equals(nar)).toBe(true);
    expect(Buffer.from(sha256(r.body)).equals(Buffer.from(info.narSha256))).toBe(true);
    expect(segmentBytes - before).toBe(sending ? SEGMENTED : 0);
    if (nixAvailable()) {
      const dump = spawnSync('nix-store', ['--dump', src], { maxBuffer: 1 << 26 });
      expect(dump.status).toBe(0);
      expect(r.body.equals(dump.stdout)).toBe(true);
    }
    expect(errorsLogged()).toEqual([]);
  });

  it('waits for a slow reader (the socket fills) and gives the same bytes', async () => {
    const r = await download(false, narPath(), { pauseEvery: 1 << 20, pauseMs: 30 });
    expect(r.complete).toBe(true);
    expect(r.body.equals(nar)).toBe(true);
  });

  it('leaves the connection usable: keep-alive requests after it on the same socket', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await download(agent, narPath());
      const b = await download(agent, narPath());
      const c = await download(agent, '/nix-cache-info');
      expect(a.body.equals(nar)).toBe(true);
      expect(b.reused).toBe(true);
      expect(b.body.equals(nar)).toBe(true);
      expect(c.reused).toBe(true);
      expect(c.body.toString()).toContain('StoreDir: /nix/store');
    } finally {
      agent.destroy();
    }
  });

  it('sends the same bytes over a unix socket', async () => {
    const before = segmentBytes;
    const sock = join(root, 's.sock');
    const running = await startServer(h.services, parseBind(`unix:${sock}`));
    try {
      const body = await new Promise<Buffer>((resolve, reject) => {
        get({ socketPath: sock, path: narPath() }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => resolve(Buffer.concat(parts)));
          res.on('error', reject);
        }).on('error', reject);
      });
      expect(body.equals(nar)).toBe(true);
      expect(segmentBytes - before).toBe(sending ? SEGMENTED : 0);
    } finally {
      await running.stop(100);
    }
  });

  it('answers a Range from the byte path, rendered from its offset', async () => {
    const before = segmentBytes;
    const from = 1000;
    const to = nar.length - 5000;
    const r = await rawRequest(h.port, 'GET', narPath(), { Range: `bytes=${from}-${to}` });
    expect(r.status).toBe(206);
    expect(r.body.equals(nar.subarray(from, to + 1))).toBe(true);
    expect(segmentBytes).toBe(before);
  });

  it('stops quietly when the client leaves mid-send, releasing the pack files', async () => {
    const r = await download(false, narPath(), { stopAfter: 2 << 20 });
    expect(r.complete).toBe(false);
    await waitFor(() => h.services.renders.active === 0);
    const store = (h.cache.blobs as LevelBlobService).chunkStore as unknown as {
      openPacks: Map<string, { refs: number }>;
    };
    await waitFor(() => [...store.openPacks.values()].every((m) => m.refs === 0));
    expect(errorsLogged()).toEqual([]);
    const again = await download(false, narPath());
    expect(again.body.equals(nar)).toBe(true);
  });

  it('cuts off a client that stops reading (idle timeout) and frees its render slot', async () => {
    const sock = connect(h.port, '127.0.0.1');
    let received = 0;
    const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
    sock.on('error', () => {});
    const started = new Promise<void>((resolve) =>
      sock.once('data', () => {
        sock.pause(); // stops reading: the socket buffers fill and the send waits
        resolve();
      }),
    );
    sock.on('data', (c: Buffer) => {
      received += c.length;
    });
    sock.write(`GET ${narPath()} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await started;
    expect(h.services.renders.active).toBe(1);
    // The idle timeout (1.5 s here) ends the response and frees the slot while the client still waits.
    await waitFor(() => h.services.renders.active === 0, 15_000);
    sock.resume(); // what the server sent before it gave up, then the end of the connection
    await closed;
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(nar.length);
    expect(errorsLogged()).toEqual([]);
  }, 30_000);

  it('truncates the body and logs ERR_INTEGRITY when a chunk of a large file is damaged', async () => {
    const blobs = h.cache.blobs as LevelBlobService;
    const big = (await blobs.stat(bigDigest))!;
    const victim = big.chunks[Math.floor(big.chunks.length / 2)]!;
    await flipChunkByte(blobs.chunkStore, victim.digest, 5);
    try {
      const r = await download(false, narPath());
      expect(r.complete).toBe(false);
      expect(r.body.length).toBeLessThan(nar.length);
      // Everything before the damaged chunk is right.
      expect(r.body.equals(nar.subarray(0, r.body.length))).toBe(true);
      await waitFor(() => errorsLogged().length > 0);
      expect(errorsLogged()[0]).toMatch(/NAR render failed: ERR_INTEGRITY/);
    } finally {
      await flipChunkByte(blobs.chunkStore, victim.digest, 5);
      logs.length = 0;
    }
    const again = await download(false, narPath());
    expect(again.body.equals(nar)).toBe(true);
  });
});

async function fileDigest(cache: Cache, path: string[]): Promise<Uint8Array> {
  let node = info.node;
  for (const name of path) {
    if (node.type !== 'directory') throw new Error('not a directory');
    const dir = (await cache.directories.get(node.digest))!;
    node = [...dir].find((e) => Buffer.from(e.name).toString() === name)!.node;
  }
  if (node.type !== 'file') throw new Error('not a file');
  return node.digest;
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
