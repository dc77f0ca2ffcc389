/**
 * Test harness for the binary-cache server: an in-memory cache with a few
 * paths in it, the server on 127.0.0.1 with a random port, a signing key, an
 * upload token, and raw HTTP helpers that send the request target exactly as
 * written (fetch() would normalise `..` and `%2e` away before they reach us).
 */

import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Cache, openCache } from '../../src/cache.js';
import { addPath } from '../../src/fs/add.js';
import { generateKeyPair, type PublicKey, type SecretKey } from '../../src/nix/signing.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import { parseBind, type RunningServer, type ServerTimeouts, startServer } from '../../src/server/server.js';
import { createServices, type ServerServices, type ServicesOptions } from '../../src/server/services.js';

export const TOKEN = 'test-upload-token-0123456789';

export interface Harness {
  cache: Cache;
  services: ServerServices;
  server: RunningServer;
  base: string;
  port: number;
  key: { secret: SecretKey; public: PublicKey };
  tmp: string;
  close(): Promise<void>;
}

export async function startHarness(
  options: ServicesOptions & { timeouts?: ServerTimeouts; cache?: Cache } = {},
): Promise<Harness> {
  const cache = options.cache ?? (await openCache({ memory: true }));
  const key = generateKeyPair('fetch-cache-test-1');
  const services = createServices(cache, { signingKeys: [key.secret], uploadToken: TOKEN, ...options });
  const server = await startServer(services, parseBind('127.0.0.1:0'), options.timeouts);
  const port = Number(new URL(server.url).port);
  const tmp = await mkdtemp(join(tmpdir(), 'fc-serve-'));
  return {
    cache,
    services,
    server,
    base: server.url,
    port,
    key,
    tmp,
    async close() {
      await server.stop(100);
      await cache.close();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/** A directory with a nested file, a large file, an executable and a symlink; added as `name`. */
export async function addSampleTree(h: Harness, name = 'sample', bigSize = 300_000): Promise<PathInfo> {
  const dir = join(h.tmp, name);
  await mkdir(join(dir, 'sub'), { recursive: true });
  await writeFile(join(dir, 'a.txt'), 'hello\n');
  const big = Buffer.alloc(bigSize);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 9)) & 0xff;
  await writeFile(join(dir, 'sub', 'big.bin'), big);
  await writeFile(join(dir, 'sub', 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(dir, 'sub', 'run.sh'), 0o755);
  await symlink('a.txt', join(dir, 'link'));
  return addPath(h.cache, dir);
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request with the target sent verbatim. */
export function rawRequest(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: Uint8Array | AsyncIterable<Uint8Array>,
  /** Called when the response headers arrive. */
  onResponse?: () => void,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path: target, headers, agent: false }, (res) => {
      onResponse?.();
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body === undefined) req.end();
    else if (body instanceof Uint8Array) req.end(body);
    else
      void (async () => {
        for await (const c of body) req.write(c);
        req.end();
      })();
  });
}

/** Bytes straight onto a socket; resolves with everything the server sent before closing (or `waitMs`). */
export function rawSocket(port: number, bytes: string | Uint8Array, waitMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const sock: Socket = connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(parts).toString('latin1'));
    };
    const timer = setTimeout(done, waitMs);
    sock.on('data', (c: Buffer) => parts.push(c));
    sock.on('close', done);
    sock.on('error', done);
    sock.write(bytes);
  });
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
