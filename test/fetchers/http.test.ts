/**
 * The download client against a real server on 127.0.0.1 that misbehaves on purpose
 * (test/helpers/http-server.ts): redirects, retries, resumption with Range, lying
 * Content-Lengths, timeouts, conditional requests, mirrors, file:// and offline mode.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FetchCacheError } from '../../src/errors.js';
import { type Download, HttpClient, type HttpClientOptions, redactUrl } from '../../src/fetchers/http.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

/** Deterministic bytes, so every transfer can be compared exactly. */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

const BIG = pattern(200_000);
const LARGE = pattern(8 << 20);
const FAST: HttpClientOptions = { retryBaseMs: 1, retryMaxMs: 5 };

async function collect(d: Download): Promise<Buffer> {
  if (d.notModified) throw new Error('unexpected 304');
  const chunks: Uint8Array[] = [];
  for await (const c of d.body) chunks.push(c);
  return Buffer.concat(chunks);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof FetchCacheError) return e.code;
    throw e;
  }
  return 'ok';
}

let server: TestServer;
beforeAll(async () => {
  server = await startServer({
    '/big': { body: BIG },
    '/large': { body: LARGE },
    '/r1': { redirect: '/r2' },
    '/r2': { redirect: '/r3' },
    '/r3': { redirect: '/big' },
    '/loop': { redirect: '/loop' },
    '/flaky': { body: 'finally', failTimes: 1 },
    '/flaky429': { body: 'ok', failTimes: 2, failStatus: 429 },
    '/always500': { body: 'never', failTimes: 1000 },
    '/404': { status: 404, body: 'gone' },
    '/drop-range': { body: BIG, dropAfter: 50_000, ranges: true, etag: '"v1"' },
    '/drop-norange': { body: BIG, dropAfter: 50_000 },
    '/drop-early': { body: BIG, dropAfter: 0 },
    '/short': { body: 'hello', contentLength: 50 },
    '/long': { body: 'hello, and then some', contentLength: 5 },
    '/slow': { body: BIG.subarray(0, 4000), slowMs: 1500, chunkSize: 1000 },
    '/slow-headers': { body: 'x', headersDelayMs: 1500 },
    '/etag': { body: 'tagged', etag: '"abc"' },
    '/lm': { body: 'dated', lastModified: 'Wed, 21 Oct 2015 07:28:00 GMT' },
  });
});
afterAll(() => server.close());

describe('HttpClient', () => {
  it('streams a body and reports progress with the Content-Length total', async () => {
    const events: { bytes: number; total: number | undefined; done: boolean }[] = [];
    const d = await new HttpClient(FAST).download({
      url: server.url('/big'),
      onProgress: (p) => events.push(p),
    });
    expect(await collect(d)).toEqual(BIG);
    expect(events.at(-1)).toMatchObject({ bytes: BIG.length, total: BIG.length, done: true });
  });

  it('reads ahead while the consumer is busy: a chunk after a pause holds more than one socket read', async () => {
    // Node's default 16 KiB buffer paused the socket, and every chunk then came alone (64 KiB at most).
    const d = await new HttpClient(FAST).download({ url: server.url('/large') });
    if (d.notModified) throw new Error('unexpected 304');
    const chunks: Uint8Array[] = [];
    for await (const c of d.body) {
      chunks.push(c);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(Buffer.concat(chunks).equals(LARGE)).toBe(true);
    expect(Math.max(...chunks.map((c) => c.length))).toBeGreaterThan(256 * 1024);
  });

  it('sends a User-Agent', async () => {
    await collect(await new HttpClient(FAST).download({ url: server.url('/big') }));
    expect(server.log.at(-1)?.headers['user-agent']).toMatch(/^fetch-cache\//);
  });

  it('follows a redirect chain and reports the final URL', async () => {
    const d = await new HttpClient(FAST).download({ url: server.url('/r1') });
    expect(d.url).toBe(server.url('/big'));
    expect(await collect(d)).toEqual(BIG);
  });

  it('bounds redirects', async () => {
    const e = await new HttpClient({ ...FAST, maxRedirects: 3 })
      .download({ url: server.url('/loop') })
      .catch((x) => x);
    expect(e).toBeInstanceOf(FetchCacheError);
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/too many redirects/);
  });

  it('retries a 500 and a 429, then succeeds', async () => {
    const retries: string[] = [];
    const client = new HttpClient(FAST);
    expect(
      (
        await collect(
          await client.download({ url: server.url('/flaky'), onRetry: (r) => retries.push(r.reason) }),
        )
      ).toString(),
    ).toBe('finally');
    expect((await collect(await client.download({ url: server.url('/flaky429') }))).toString()).toBe('ok');
    expect(server.requests('/flaky429')).toBe(3);
    expect(retries).toEqual(['HTTP 500']);
  });

  it('gives up after the configured attempts with the status and URL', async () => {
    const before = server.requests('/always500');
    const e = await new HttpClient({ ...FAST, attempts: 3 })
      .download({ url: server.url('/always500') })
      .catch((x) => x);
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toContain('500');
    expect(e.message).toContain(server.url('/always500'));
    expect(server.requests('/always500') - before).toBe(3);
  });

  it('does not retry a 404', async () => {
    const before = server.requests('/404');
    const e = await new HttpClient(FAST).download({ url: server.url('/404') }).catch((x) => x);
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/HTTP error 404 \(Not Found\)/);
    expect(server.requests('/404') - before).toBe(1);
  });

  it('resumes a dropped transfer with Range and If-Range', async () => {
    const resumes: number[] = [];
    const d = await new HttpClient(FAST).download({
      url: server.url('/drop-range'),
      onRetry: (r) => resumes.push(r.resumeAt),
    });
    expect(await collect(d)).toEqual(BIG);
    expect(resumes).toHaveLength(1);
    expect(resumes[0]).toBeGreaterThan(0);
    const last = server.log.filter((l) => l.path === '/drop-range').at(-1)!;
    expect(last.headers.range).toBe(`bytes=${resumes[0]}-`);
    expect(last.headers['if-range']).toBe('"v1"');
  });

  it('fails with ERR_HTTP when a dropped transfer cannot be resumed after bytes were handed out', async () => {
    const d = await new HttpClient(FAST).download({ url: server.url('/drop-norange') });
    const e = await collect(d).catch((x) => x);
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/cannot resume/);
  });

  it('restarts cleanly from byte 0 when nothing was handed out yet', async () => {
    const retries: number[] = [];
    const d = await new HttpClient(FAST).download({
      url: server.url('/drop-early'),
      onRetry: (r) => retries.push(r.resumeAt),
    });
    expect(await collect(d)).toEqual(BIG);
    expect(retries).toEqual([0]);
  });

  it('detects a body shorter than its Content-Length', async () => {
    expect(
      await code(
        new HttpClient({ ...FAST, attempts: 2 }).download({ url: server.url('/short') }).then(collect),
      ),
    ).toBe('ERR_HTTP');
  });

  it('detects a body longer than its Content-Length', async () => {
    const e = await new HttpClient(FAST)
      .download({ url: server.url('/long') })
      .then(collect)
      .catch((x) => x);
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/longer than its Content-Length/);
  });

  it('times out an idle body and a slow header', async () => {
    const client = new HttpClient({ ...FAST, attempts: 1, bodyTimeoutMs: 100, headersTimeoutMs: 100 });
    expect(await code(client.download({ url: server.url('/slow') }).then(collect))).toBe('ERR_HTTP');
    expect(await code(client.download({ url: server.url('/slow-headers') }))).toBe('ERR_HTTP');
  });

  it('asks conditionally and reports 304 as not modified', async () => {
    const client = new HttpClient(FAST);
    const first = await client.download({ url: server.url('/etag') });
    expect(first.notModified).toBe(false);
    if (first.notModified) return;
    expect(first.etag).toBe('"abc"');
    await collect(first);
    expect((await client.download({ url: server.url('/etag'), etag: '"abc"' })).notModified).toBe(true);
    expect((await client.download({ url: server.url('/etag'), etag: '"old"' })).notModified).toBe(false);
    const lm = 'Wed, 21 Oct 2015 07:28:00 GMT';
    expect((await client.download({ url: server.url('/lm'), lastModified: lm })).notModified).toBe(true);
  });

  it('tries mirrors in order after the URL fails', async () => {
    const d = await new HttpClient(FAST).download({
      url: server.url('/404'),
      mirrors: [server.url('/nothing'), server.url('/big')],
    });
    expect(d.url).toBe(server.url('/big'));
    expect(await collect(d)).toEqual(BIG);
    const e = await new HttpClient(FAST)
      .download({ url: server.url('/404'), mirrors: [server.url('/nothing')] })
      .catch((x) => x);
    expect(e.code).toBe('ERR_HTTP');
    expect(e.message).toMatch(/404.*1 mirror/);
  });

  it('fails over connection refused with ERR_HTTP after retries', async () => {
    const dead = await startServer();
    const url = dead.url('/x');
    await dead.close();
    expect(await code(new HttpClient({ ...FAST, attempts: 2 }).download({ url }))).toBe('ERR_HTTP');
  });

  it('reads file:// URLs from disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fc-http-'));
    try {
      await writeFile(join(dir, 'f'), BIG);
      const d = await new HttpClient({ offline: true }).download({ url: pathToFileURL(join(dir, 'f')).href });
      expect(await collect(d)).toEqual(BIG);
      expect(await code(new HttpClient().download({ url: pathToFileURL(join(dir, 'missing')).href }))).toBe(
        'ERR_IO',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('offline: ERR_OFFLINE without opening a connection', async () => {
    const before = server.connections();
    expect(await code(new HttpClient({ offline: true }).download({ url: server.url('/big') }))).toBe(
      'ERR_OFFLINE',
    );
    expect(server.connections()).toBe(before);
  });

  it('rejects bad URLs and schemes with ERR_BAD_URL', async () => {
    expect(await code(new HttpClient().download({ url: 'not a url' }))).toBe('ERR_BAD_URL');
    expect(await code(new HttpClient().download({ url: 'ftp://example.org/x' }))).toBe('ERR_BAD_URL');
  });

  it('redacts userinfo in messages', async () => {
    expect(redactUrl('https://user:secret@example.org/x')).toBe('https://redacted:redacted@example.org/x');
    const url = server.url('/404').replace('http://', 'http://alice:pw@');
    const e = await new HttpClient(FAST).download({ url }).catch((x) => x);
    expect(e.message).not.toContain('pw');
    expect(e.message).toContain('redacted');
  });
});
