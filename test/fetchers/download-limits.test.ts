/**
 * No download can hang forever: Nix's stalled-download-timeout (under 1 byte/s for that long fails the
 * transfer) and an optional size cap, against servers on 127.0.0.1 that trickle, never end, or send more
 * than they should. Each limit is set small (a 1 s timeout, a 1 MiB cap) through the library option, the
 * environment and the CLI flag (real child processes), and the ERR_HTTP message names the limit. A body
 * that moves slowly but above 1 byte/s is never cut. No assertion is about speed.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpClient, type HttpClientOptions } from '../../src/fetchers/http.js';
import { tarHeader } from '../helpers/archives.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

let server: TestServer;
let endless: Server;
let endlessUrl: string;
beforeAll(async () => {
  server = await startServer({
    // 1 byte every 5 s: moving, but far below 1 byte/s.
    '/trickle': { body: 'x'.repeat(100), chunkSize: 1, slowMs: 5000 },
    // 1 byte every 250 ms: slow, but above 1 byte/s.
    '/slow': { body: 'y'.repeat(8), chunkSize: 1, slowMs: 250 },
    '/big': { body: Buffer.alloc(2 << 20, 1) },
    '/bomb': { body: gzipSync(Buffer.alloc(16 << 20)), headers: { 'content-encoding': 'gzip' } },
  });
  // A body without end (no Content-Length), 64 KiB at a time as fast as the client takes it: a tar member
  // header of a 1 GiB file, then its bytes (so it is also an honest archive that never ends, as far as read).
  endless = createServer((_req, res) => {
    res.writeHead(200);
    res.write(tarHeader({ name: 'endless', size: 1 << 30 }));
    const chunk = Buffer.alloc(64 << 10, 7);
    const more = (): void => {
      while (!res.destroyed && res.write(chunk)) {
        // Keep writing until the socket pushes back.
      }
    };
    res.on('drain', more);
    more();
  });
  await new Promise<void>((r) => endless.listen(0, '127.0.0.1', r));
  endlessUrl = `http://127.0.0.1:${(endless.address() as AddressInfo).port}/endless`;
});
afterAll(async () => {
  endless.closeAllConnections();
  await new Promise((r) => endless.close(r));
  await server.close();
});

async function download(url: string, options: HttpClientOptions): Promise<number> {
  const d = await new HttpClient({ attempts: 1, retryBaseMs: 1, ...options }).download({ url });
  let n = 0;
  if (!d.notModified) for await (const c of d.body) n += c.length;
  return n;
}

describe('stalled-download-timeout', () => {
  it('a body that trickles below 1 byte/s fails with ERR_HTTP naming the timeout', async () => {
    const e = await download(server.url('/trickle'), { stalledDownloadTimeoutMs: 1000 }).catch((x) => x);
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/stalled.*stalled-download-timeout/);
  });

  it('is read from FETCH_CACHE_STALLED_DOWNLOAD_TIMEOUT (seconds) when the option is not given', async () => {
    const env = { FETCH_CACHE_STALLED_DOWNLOAD_TIMEOUT: '1' };
    const e = await download(server.url('/trickle'), { env }).catch((x) => x);
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/stalled-download-timeout/);
    expect(() => new HttpClient({ env: { FETCH_CACHE_STALLED_DOWNLOAD_TIMEOUT: 'soon' } })).toThrow(
      TypeError,
    );
  });

  it('a body that moves slowly but above 1 byte/s is not cut', async () => {
    expect(await download(server.url('/slow'), { stalledDownloadTimeoutMs: 1000 })).toBe(8);
  });
});

describe('the size cap', () => {
  it('an endless body fails with ERR_HTTP naming the limit', async () => {
    const e = await download(endlessUrl, { maxDownloadBytes: 1 << 20 }).catch((x) => x);
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/size limit of 1048576 bytes \(max-download-size\)/);
  });

  it('a Content-Length over the cap fails before the body is read; FETCH_CACHE_MAX_DOWNLOAD_SIZE sets it', async () => {
    const e = await download(server.url('/big'), { env: { FETCH_CACHE_MAX_DOWNLOAD_SIZE: '1M' } }).catch(
      (x) => x,
    );
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/max-download-size.*Content-Length is 2097152/);
    expect(await download(server.url('/big'), { maxDownloadBytes: 2 << 20 })).toBe(2 << 20);
  });

  it('a Content-Encoding that decodes to more than the cap fails too', async () => {
    const e = await download(server.url('/bomb'), { maxDownloadBytes: 1 << 20 }).catch((x) => x);
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/max-download-size.*decodes to more than/);
  });
});

describe.runIf(cliBuilt())('the CLI: flags and environment', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'fc-limits-'));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('fetch url --stalled-download-timeout 1 against a trickle: exit 1, one ERR_HTTP line', async () => {
    const r = await runCli([
      '--root',
      root,
      'fetch',
      'url',
      server.url('/trickle'),
      '--stalled-download-timeout',
      '1',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERR_HTTP: .*stalled-download-timeout/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('FETCH_CACHE_MAX_DOWNLOAD_SIZE, or --max-download-size, against an endless body: exit 1, ERR_HTTP', async () => {
    const byEnv = await runCli(['--root', root, 'fetch', 'url', endlessUrl], {
      env: { FETCH_CACHE_MAX_DOWNLOAD_SIZE: '1M' },
    });
    expect(byEnv.code).toBe(1);
    expect(byEnv.stderr).toMatch(/^ERR_HTTP: .*max-download-size/);
    const byFlag = await runCli([
      '--root',
      root,
      '--max-download-size',
      '2M',
      'fetch',
      'tarball',
      endlessUrl,
    ]);
    expect(byFlag.code).toBe(1);
    expect(byFlag.stderr).toMatch(/^ERR_HTTP: .*size limit of 2097152 bytes/);
  });

  it('a bad value is bad usage (exit 2)', async () => {
    const flag = await runCli(['--root', root, 'fetch', 'url', endlessUrl, '--max-download-size', 'lots']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--max-download-size');
    const env = await runCli(['--root', root, 'fetch', 'url', endlessUrl], {
      env: { FETCH_CACHE_STALLED_DOWNLOAD_TIMEOUT: '1.5' },
    });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('FETCH_CACHE_STALLED_DOWNLOAD_TIMEOUT');
  });
});
