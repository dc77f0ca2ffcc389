/**
 * An embedding service does what the CLI does, through the package's entry (src/index.ts) alone:
 * `gc`, `verify` and `stats` give what `fetch-cache gc|verify|stats --json` print for the same root (one
 * implementation, src/ops/), and `createServer(cache, options)` serves the cache: it listens where it is
 * told (a random loopback port, a unix socket), answers as `fetch-cache serve` does (priority, signed
 * narinfos), logs `listening` and `stopped` through the logger it was given, refuses a second `listen`, turns
 * a port in use into ERR_IO, and leaves the cache open when it stops.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Cache,
  createServer,
  Fetcher,
  fingerprintPath,
  formatPublicKey,
  gc,
  generateKeyPair,
  isFetchCacheError,
  type Logger,
  openCache,
  parseNarInfo,
  parsePublicKey,
  stats,
  verify,
  verifySignature,
} from '../../src/index.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

let tmp: string;
let files: TestServer;
let storePath: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'fc-embedding-'));
  files = await startServer({ '/a.txt': { body: 'served by an embedding service\n' } });
  const cache = await openCache({ root: join(tmp, 'root') });
  try {
    storePath = (await new Fetcher(cache).fetch({ type: 'url', url: files.url('/a.txt') })).path;
  } finally {
    await cache.close();
  }
});
afterAll(async () => {
  await files?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function withRoot<T>(fn: (cache: Cache) => Promise<T>): Promise<T> {
  const cache = await openCache({ root: join(tmp, 'root') });
  try {
    return await fn(cache);
  } finally {
    await cache.close();
  }
}

async function cliJson(args: string[]): Promise<Record<string, unknown>> {
  const r = await runCli(['--root', join(tmp, 'root'), '--json', ...args], {
    env: { FETCH_CACHE_STORE: undefined },
  });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** `o` without its `durationMs` (the one field two runs never share). */
function timeless(o: object): Record<string, unknown> {
  const { durationMs: _, ...rest } = o as Record<string, unknown>;
  return rest;
}

describe.runIf(cliBuilt())('gc, verify and stats from the package entry', () => {
  it('give what the CLI prints for the same root', async () => {
    const library = await withRoot(async (cache) => ({
      stats: await stats(cache),
      verify: await verify(cache),
    }));
    expect(library.stats.paths).toBe(1);
    expect(library.verify).toMatchObject({ checked: 1, damaged: [] });
    expect(await cliJson(['stats'])).toEqual(library.stats);
    expect(timeless(await cliJson(['verify', '--all']))).toEqual(timeless(library.verify));
    const collected = await withRoot((cache) => gc(cache));
    expect(collected).toMatchObject({ paths: 1, evicted: [] });
    const cliGc = await cliJson(['gc']);
    expect(Object.keys(cliGc).sort()).toEqual(Object.keys(collected).sort());
    expect(cliGc).toMatchObject({ paths: collected.paths, storedBytes: collected.storedBytes, evicted: [] });
  });
});

/** GET over TCP, or over the unix socket `socketPath`. */
function get(url: string, socketPath?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url, 'http://localhost');
    request(socketPath === undefined ? target : { socketPath, path: target.pathname }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('createServer', () => {
  it('serves the cache on a random port, signed, logs listening and stopped, and leaves the cache open', async () => {
    const key = generateKeyPair('embedded-1');
    const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
    const log: Logger = { log: (level, msg, fields = {}) => lines.push({ level, msg, fields }) };
    await withRoot(async (cache) => {
      const server = createServer(cache, { priority: 7, signingKeys: [key.secret], log });
      expect(server.url).toBeUndefined();
      const url = await server.listen('127.0.0.1:0');
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(server.url).toBe(url);
      expect((await get(`${url}/nix-cache-info`)).body).toContain('Priority: 7\n');
      const hashPart = storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
      const narinfo = await get(`${url}/${hashPart}.narinfo`);
      expect(narinfo.status).toBe(200);
      const info = parseNarInfo(narinfo.body);
      expect(info.storePath).toBe(storePath);
      const [sig] = info.sigs;
      const pub = parsePublicKey(formatPublicKey(key.public));
      expect(verifySignature([pub], fingerprintPath(info), sig!)).toBe(true);
      await expect(server.listen('127.0.0.1:0')).rejects.toThrow(TypeError);
      await server.stop(100);
      await server.stop(100);
      await expect(get(`${url}/nix-cache-info`)).rejects.toThrow();
      // The cache is still open: the caller closes it.
      expect((await stats(cache)).paths).toBe(1);
    });
    expect(lines.map((l) => l.msg).filter((m) => m !== 'request')).toEqual(['listening', 'stopped']);
    expect(lines[0]!.fields).toMatchObject({ priority: 7, signingKeys: 'embedded-1', uploads: false });
  });

  it('listens on a unix socket', async () => {
    const socket = join(tmp, 'cache.sock');
    await withRoot(async (cache) => {
      const server = createServer(cache, { compression: 'none' });
      expect(await server.listen(`unix:${socket}`)).toBe(`unix:${socket}`);
      try {
        expect((await get('/nix-cache-info', socket)).body).toContain('StoreDir: /nix/store\n');
      } finally {
        await server.stop(100);
      }
    });
  });

  it('a port in use is ERR_IO; a malformed bind or compression is a TypeError', async () => {
    const taken = createNetServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    const cache = await openCache({ memory: true });
    try {
      const server = createServer(cache);
      const error = await server.listen(`127.0.0.1:${port}`).catch((e: unknown) => e);
      expect(isFetchCacheError(error, 'ERR_IO'), String(error)).toBe(true);
      expect((error as Error).message).toBe(`cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
      await expect(createServer(cache).listen('localhost')).rejects.toThrow(TypeError);
      expect(() => createServer(cache, { compression: 'gzip' as never })).toThrow(TypeError);
      await server.stop();
    } finally {
      await cache.close();
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
