import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { jsonLogger } from '../../src/server/log.js';
import { RenderLimiter } from '../../src/server/render-limit.js';
import { parseBind, startServer } from '../../src/server/server.js';
import { createServices } from '../../src/server/services.js';
import { CLI_MAIN, cliBuilt } from '../helpers/cli.js';
import { addSampleTree, type Harness, rawRequest, rawSocket, startHarness } from './harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('parseBind', () => {
  it('parses TCP and unix forms', () => {
    expect(parseBind('127.0.0.1:5000')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 5000 });
    expect(parseBind('[::1]:80')).toEqual({ kind: 'tcp', host: '::1', port: 80 });
    expect(parseBind(':8080')).toEqual({ kind: 'tcp', host: '0.0.0.0', port: 8080 });
    expect(parseBind('unix:/run/x.sock')).toEqual({ kind: 'unix', path: '/run/x.sock' });
    expect(parseBind('/run/x.sock')).toEqual({ kind: 'unix', path: '/run/x.sock' });
    for (const bad of ['localhost', '1.2.3.4:99999', 'host:port', ''])
      expect(() => parseBind(bad)).toThrow(TypeError);
  });
});

describe('serving', () => {
  it('listens on a unix socket', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fc-sock-'));
    const cache = await openCache({ memory: true });
    const running = await startServer(createServices(cache), parseBind(`unix:${join(dir, 's.sock')}`));
    try {
      const body = await new Promise<string>((resolve, reject) => {
        request({ socketPath: join(dir, 's.sock'), path: '/nix-cache-info' }, (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => resolve(text));
        })
          .on('error', reject)
          .end();
      });
      expect(body).toContain('StoreDir: /nix/store');
    } finally {
      await running.stop(100);
      await cache.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps connections alive between requests', async () => {
    h = await startHarness();
    const answer = await rawSocket(
      h.port,
      'GET /nix-cache-info HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(answer.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(answer).toMatch(/Keep-Alive: timeout=5/i);
  });

  it('cuts off a client that sends its headers too slowly', async () => {
    h = await startHarness({ timeouts: { headersMs: 300, requestMs: 300 } });
    const started = Date.now();
    const closedAfter = await new Promise<number>((resolve) => {
      const sock = connect(h!.port, '127.0.0.1');
      sock.write('GET /nix-cache-info HTTP/1.1\r\nHost: x\r\n');
      const drip = setInterval(() => sock.write('X-Slow: 1\r\n'), 100);
      sock.on('data', () => {});
      sock.on('close', () => {
        clearInterval(drip);
        resolve(Date.now() - started);
      });
      sock.on('error', () => {});
    });
    expect(closedAfter).toBeLessThan(5000);
  });

  it('caps concurrent renders: beyond the queue a download gets 503 with Retry-After', async () => {
    // Streamed renders (a NAR in the NAR cache holds no slot while it is sent).
    h = await startHarness({ maxRenders: 1, maxQueuedRenders: 0, narCache: { maxItemBytes: 0 } });
    const info = await addSampleTree(h, 'big', 8_000_000);
    const path = `/nar/${encodeNix32(info.narSha256)}.nar`;
    // A client that does not read holds its slot.
    const stalled = connect(h.port, '127.0.0.1');
    stalled.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    stalled.pause();
    await new Promise((r) => setTimeout(r, 300));
    expect(h.services.renders.active).toBe(1);
    const r = await rawRequest(h.port, 'GET', path);
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
    stalled.destroy();
    await new Promise((r) => setTimeout(r, 300));
    expect(h.services.renders.active).toBe(0);
    expect((await rawRequest(h.port, 'GET', path)).body.length).toBe(info.narSize);
  });

  it('frees render slots of clients that leave before or during their download', async () => {
    h = await startHarness({ maxRenders: 2, maxQueuedRenders: 64 });
    const info = await addSampleTree(h, 'big', 4_000_000);
    const path = `/nar/${encodeNix32(info.narSha256)}.nar`;
    // A slow lookup (a busy database): clients leave while their request is still before the render.
    const pathInfos = h.cache.pathInfos;
    const byNarHash = pathInfos.byNarHash.bind(pathInfos);
    pathInfos.byNarHash = async (hash) => {
      await new Promise((r) => setTimeout(r, 20));
      return byNarHash(hash);
    };
    const leave = (afterMs: number) =>
      new Promise<void>((resolve) => {
        const sock = connect(h!.port, '127.0.0.1');
        sock.on('error', () => {});
        sock.on('close', () => resolve());
        sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, () => {
          if (afterMs === 0) sock.destroy();
          else setTimeout(() => sock.destroy(), afterMs);
        });
      });
    await Promise.all(Array.from({ length: 24 }, (_, i) => leave(i % 3 === 0 ? 0 : i % 3)));
    await new Promise((r) => setTimeout(r, 300));
    expect(h.services.renders.active).toBe(0);
    expect(h.services.renders.queued).toBe(0);
    expect((await rawRequest(h.port, 'GET', path)).body.length).toBe(info.narSize);
  });

  it('queues renders in order and frees slots when a waiting client leaves', async () => {
    const limiter = new RenderLimiter(1, 2);
    const first = await limiter.acquire();
    const order: number[] = [];
    const second = limiter.acquire().then((rel) => {
      order.push(2);
      return rel;
    });
    const gone = new AbortController();
    const third = limiter.acquire(gone.signal).catch(() => 'left');
    gone.abort();
    expect(await third).toBe('left');
    expect(limiter.queued).toBe(1);
    first();
    (await second)();
    expect(order).toEqual([2]);
    expect(limiter.active).toBe(0);
  });

  it('stops gracefully: an in-flight download completes, new connections are refused', async () => {
    h = await startHarness();
    const info = await addSampleTree(h, 'big', 4_000_000);
    const path = `/nar/${encodeNix32(info.narSha256)}.nar`;
    // Stopped once the response has begun (a fixed delay lost the race on a busy machine: the request was
    // not read yet, so its idle connection was closed).
    let responding!: () => void;
    const begun = new Promise<void>((r) => {
      responding = r;
    });
    const download = rawRequest(h.port, 'GET', path, {}, undefined, responding);
    await begun;
    const stopped = h.server.stop(5000);
    const r = await download;
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(info.narSize);
    await stopped;
    await expect(rawRequest(h.port, 'GET', '/nix-cache-info')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('logs one JSON line per request without the Authorization header', async () => {
    const lines: string[] = [];
    const sink = { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream;
    h = await startHarness({ log: jsonLogger(sink) });
    await rawRequest(
      h.port,
      'PUT',
      `/${'0'.repeat(32)}.narinfo`,
      { Authorization: 'Bearer very-secret-value' },
      new Uint8Array(1),
    );
    const records = lines.map((l) => JSON.parse(l));
    expect(records.at(-1)).toMatchObject({
      level: 'info',
      msg: 'request',
      method: 'PUT',
      route: 'narinfo',
      status: 401,
    });
    expect(lines.join('')).not.toContain('very-secret-value');
  });
});

describe.skipIf(!cliBuilt())('fetch-cache serve (CLI)', () => {
  it('serves the cache root, logs JSON lines, and exits 0 on SIGTERM', async () => {
    const root = await mkdtemp(join(tmpdir(), 'fc-serve-cli-'));
    const token = join(root, 'token');
    await writeFile(token, 'tok\n');
    const child = spawn(
      process.execPath,
      [
        CLI_MAIN,
        '--root',
        join(root, 'cache'),
        'serve',
        '--bind',
        '127.0.0.1:0',
        '--priority',
        '12',
        '--upload-token-file',
        token,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      const lines = createInterface({ input: child.stdout });
      const first = await new Promise<{ url: string; msg: string; uploads: boolean }>((resolve) =>
        lines.once('line', (l) => resolve(JSON.parse(l))),
      );
      expect(first.msg).toBe('listening');
      expect(first.uploads).toBe(true);
      const r = await fetch(`${first.url}/nix-cache-info`);
      expect(await r.text()).toContain('Priority: 12\n');
      const rest: string[] = [];
      lines.on('line', (l) => rest.push(l));
      child.kill('SIGTERM');
      const code = await new Promise((resolve) => child.on('close', resolve));
      expect(code).toBe(0);
      expect(rest.map((l) => JSON.parse(l).msg)).toEqual(['request', 'stopping', 'stopped']);
    } finally {
      child.kill('SIGKILL');
      await rm(root, { recursive: true, force: true });
    }
  });

  it('stops cleanly under a NAR download: the download is cut, its hold released before the store closes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'fc-serve-stop-'));
    const big = join(root, 'big.bin');
    // Over the 16 MiB NAR cache item size, so the NAR streams from the packs.
    await writeFile(big, Buffer.alloc(40 << 20, 7));
    const cache = join(root, 'cache');
    const added = spawnSync(process.execPath, [CLI_MAIN, '--root', cache, '--json', 'add', big], {
      encoding: 'utf8',
    });
    expect(added.status, added.stderr).toBe(0);
    const child = spawn(process.execPath, [CLI_MAIN, '--root', cache, 'serve', '--bind', '127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const lines = createInterface({ input: child.stdout });
      const first = await new Promise<{ url: string }>((resolve) =>
        lines.once('line', (l) => resolve(JSON.parse(l))),
      );
      const rest: { level: string; msg: string }[] = [];
      lines.on('line', (l) => rest.push(JSON.parse(l)));
      const hash = JSON.parse(added.stdout).path.slice('/nix/store/'.length, '/nix/store/'.length + 32);
      const narinfo = await (await fetch(`${first.url}/${hash}.narinfo`)).text();
      const url = /^URL: (.*)$/m.exec(narinfo)![1]!;
      // A client that reads the first bytes and then stops reading: the server is mid-NAR.
      const res = await fetch(`${first.url}/${url}`);
      const reader = res.body!.getReader();
      await reader.read();
      const closed = new Promise((resolve) => child.on('close', resolve));
      child.kill('SIGTERM');
      while (!rest.some((l) => l.msg === 'stopping')) await new Promise((r) => setTimeout(r, 10));
      // The client gives up while the server stops: the last connection closes under a running render.
      await reader.cancel().catch(() => {});
      expect(await closed).toBe(0);
      expect(rest.filter((l) => l.level !== 'info')).toEqual([]);
      // The cut download is logged (aborted) before the server says it stopped: it was waited for.
      expect(rest.map((l) => l.msg).slice(-3)).toEqual(['stopping', 'request', 'stopped']);
      expect(rest.at(-2)).toMatchObject({ aborted: true });
    } finally {
      child.kill('SIGKILL');
      await rm(root, { recursive: true, force: true });
    }
  });

  it('exits 2 on a bad --bind', async () => {
    const child = spawn(process.execPath, [CLI_MAIN, 'serve', '--bind', 'nonsense'], { stdio: 'pipe' });
    let err = '';
    child.stderr.on('data', (c) => {
      err += c;
    });
    expect(await new Promise((resolve) => child.on('close', resolve))).toBe(2);
    expect(err).toContain('--bind');
  });
});
