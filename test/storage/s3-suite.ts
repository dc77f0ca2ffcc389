/**
 * The S3 client's suite against a real S3-compatible server, shared by the
 * files that run it per server (s3.test.ts: Ceph radosgw; s3-swift.test.ts:
 * OpenStack Swift's s3api). The server is named by environment variables
 * `PREFIX` (the endpoint), `PREFIX_ACCESS_KEY`, `PREFIX_SECRET_KEY` and
 * `PREFIX_REGION`, as printed by scripts/services/*-up.sh. Faults (5xx, dropped
 * connections, cut bodies) come from a proxy in front of the real server
 * (test/helpers/fault-proxy.ts), so every request still reaches it signed.
 */

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFetchCacheError } from '../../src/errors.js';
import { S3Client, type S3ClientOptions } from '../../src/storage/s3.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';

export interface S3TestServer {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
}

/** The server named by `PREFIX…` variables, or undefined when PREFIX is unset. */
export function s3TestServer(prefix: string): S3TestServer | undefined {
  const endpoint = process.env[prefix];
  if (!endpoint) return undefined;
  const need = (suffix: string) => {
    const v = process.env[`${prefix}_${suffix}`];
    if (!v) throw new Error(`${prefix} is set but ${prefix}_${suffix} is not`);
    return v;
  };
  return { endpoint, accessKey: need('ACCESS_KEY'), secretKey: need('SECRET_KEY'), region: need('REGION') };
}

const MiB = 1024 * 1024;

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function* chunksOf(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<Error> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isFetchCacheError(e), `expected ${code}, got ${String(e)}`).toBe(true);
  expect((e as { code: string }).code).toBe(code);
  return e as Error;
}

/** Runs `f` over `items` with at most `n` at a time. */
async function pool<T>(items: readonly T[], n: number, f: (x: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await f(items[next++]!);
    }),
  );
}

export function describeS3Suite(name: string, server: S3TestServer): void {
  describe(name, () => {
    const bucket = `fc-test-${process.pid}-${randomBytes(4).toString('hex')}`;
    const clients: S3Client[] = [];
    const proxies: FaultProxy[] = [];
    const client = (o: Partial<S3ClientOptions> = {}) => {
      const c = new S3Client({
        endpoint: server.endpoint,
        region: server.region,
        credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
        backoffMs: 5,
        ...o,
      });
      clients.push(c);
      return c;
    };
    const proxied = async (o: Partial<S3ClientOptions> = {}) => {
      const proxy = await startFaultProxy(server.endpoint);
      proxies.push(proxy);
      return { proxy, c: client({ ...o, endpoint: proxy.endpoint }) };
    };
    let s3: S3Client;

    beforeAll(async () => {
      s3 = client();
      await s3.createBucket(bucket);
    });

    afterAll(async () => {
      if (s3 !== undefined) {
        const keys: string[] = [];
        for await (const o of s3.listObjects(bucket, '')) keys.push(o.key);
        await s3.deleteObjects(bucket, keys);
      }
      await Promise.all(clients.map((c) => c.close()));
      await Promise.all(proxies.map((p) => p.close()));
    });

    it('creates a bucket that already exists as a no-op', async () => {
      await s3.createBucket(bucket);
    });

    it('round-trips objects, with keys that need encoding', async () => {
      const keys = ['plain', 'dir/a b+c=d&e~f.txt', 'ünï/cödé', `quote'"<>%41;`, `${'x/'.repeat(20)}deep`];
      for (const [i, key] of keys.entries()) {
        const data = randomBytes(1000 + i * 70_000);
        await s3.putObject(bucket, key, data);
        expect((await s3.getObjectBytes(bucket, key)).equals(data)).toBe(true);
        expect((await s3.headObject(bucket, key))?.size).toBe(data.length);
      }
      const listed: string[] = [];
      for await (const o of s3.listObjects(bucket, '')) listed.push(o.key);
      for (const key of keys) expect(listed).toContain(key);
      await s3.deleteObjects(bucket, keys);
      for (const key of keys) expect(await s3.headObject(bucket, key)).toBeUndefined();
    });

    it('puts a body from a stream with its Content-Length, and an empty object', async () => {
      const data = randomBytes(3 * MiB + 17);
      await s3.putObject(bucket, 'stream', chunksOf(data, 64 * 1024), data.length);
      expect((await s3.getObjectBytes(bucket, 'stream')).equals(data)).toBe(true);
      await s3.putObject(bucket, 'empty', new Uint8Array(0));
      expect((await s3.headObject(bucket, 'empty'))?.size).toBe(0);
      expect((await s3.getObjectBytes(bucket, 'empty')).length).toBe(0);
    });

    it('answers a missing object with undefined (head) or ERR_NOT_FOUND (get)', async () => {
      expect(await s3.headObject(bucket, 'no/such/key')).toBeUndefined();
      const e = await expectCode(s3.getObjectBytes(bucket, 'no/such/key'), 'ERR_NOT_FOUND');
      expect(e.message).toContain(`${bucket}/no/such/key`);
    });

    it('reads ranges exactly, and refuses a range past the end', async () => {
      const data = randomBytes(300_000);
      await s3.putObject(bucket, 'ranged', data);
      for (const [offset, length] of [
        [0, 1],
        [299_999, 1],
        [1000, 65_536],
        [12_345, 100_000],
        [0, 300_000],
      ] as const) {
        const got = await s3.getObjectBytes(bucket, 'ranged', { offset, length });
        expect(got.equals(data.subarray(offset, offset + length))).toBe(true);
      }
      expect((await s3.getObjectBytes(bucket, 'ranged', { offset: 5, length: 0 })).length).toBe(0);
      // Partly past the end: the object is shorter than the range asked for.
      const short = await expectCode(
        s3.getObjectBytes(bucket, 'ranged', { offset: 299_000, length: 2000 }),
        'ERR_STORE_BACKEND',
      );
      expect(short.message).toContain(`${bucket}/ranged`);
      // Wholly past the end: the server refuses the range.
      await expectCode(
        s3.getObjectBytes(bucket, 'ranged', { offset: 400_000, length: 10 }),
        'ERR_STORE_BACKEND',
      );
    });

    it('uploads in parts of 5 MiB (parts sent out of order), reads across part boundaries', async () => {
      const data = randomBytes(2 * 5 * MiB + 1024);
      const id = await s3.createMultipartUpload(bucket, 'multi');
      const bodies = [data.subarray(0, 5 * MiB), data.subarray(5 * MiB, 10 * MiB), data.subarray(10 * MiB)];
      const etags = await Promise.all(
        [2, 0, 1].map(async (i) => [i, await s3.uploadPart(bucket, 'multi', id, i + 1, bodies[i]!)] as const),
      );
      const parts = etags.sort((a, b) => a[0] - b[0]).map(([i, etag]) => ({ partNumber: i + 1, etag }));
      const { etag } = await s3.completeMultipartUpload(bucket, 'multi', id, parts);
      expect(etag).toMatch(/-3"?$/);
      expect((await s3.headObject(bucket, 'multi'))?.size).toBe(data.length);
      expect((await collect(s3.getObject(bucket, 'multi'))).equals(data)).toBe(true);
      const across = await s3.getObjectBytes(bucket, 'multi', {
        offset: 5 * MiB - 100,
        length: 5 * MiB + 200,
      });
      expect(across.equals(data.subarray(5 * MiB - 100, 10 * MiB + 100))).toBe(true);
    });

    it('aborts a multipart upload: no object, and a second abort is fine', async () => {
      const id = await s3.createMultipartUpload(bucket, 'aborted');
      await s3.uploadPart(bucket, 'aborted', id, 1, randomBytes(5 * MiB));
      await s3.abortMultipartUpload(bucket, 'aborted', id);
      expect(await s3.headObject(bucket, 'aborted')).toBeUndefined();
      await s3.abortMultipartUpload(bucket, 'aborted', id);
    });

    it('upload() uses one PUT for small sources and parts for large ones', async () => {
      const small = randomBytes(100_000);
      expect(await s3.upload(bucket, 'up-small', chunksOf(small, 8192), { partSize: 5 * MiB })).toMatchObject(
        {
          size: small.length,
          parts: 1,
        },
      );
      expect((await s3.getObjectBytes(bucket, 'up-small')).equals(small)).toBe(true);
      const large = randomBytes(12 * MiB + 5);
      expect(
        await s3.upload(bucket, 'up-large', chunksOf(large, 64 * 1024), { partSize: 5 * MiB }),
      ).toMatchObject({
        size: large.length,
        parts: 3,
      });
      expect((await s3.getObjectBytes(bucket, 'up-large')).equals(large)).toBe(true);
    });

    it('upload() aborts the multipart upload when its source fails', async () => {
      const { proxy, c } = await proxied();
      async function* failing() {
        yield* chunksOf(randomBytes(6 * MiB), 1 * MiB);
        throw new Error('source broke');
      }
      await expect(c.upload(bucket, 'up-failed', failing(), { partSize: 5 * MiB })).rejects.toThrow(
        'source broke',
      );
      expect(proxy.requests('DELETE')).toBe(1); // the abort
      expect(await s3.headObject(bucket, 'up-failed')).toBeUndefined();
    });

    it('deletes more keys than one DeleteObjects request takes, missing keys included', async () => {
      const keys = Array.from({ length: 1050 }, (_, i) => `del/${String(i).padStart(5, '0')}`);
      await pool(keys, 16, (k) => s3.putObject(bucket, k, Buffer.from(k)));
      const { proxy, c } = await proxied();
      await c.deleteObjects(bucket, [...keys, 'del/missing-1', 'never/there']);
      expect(proxy.requests('POST')).toBe(2);
      const left: string[] = [];
      for await (const o of s3.listObjects(bucket, 'del/')) left.push(o.key);
      expect(left).toEqual([]);
      await c.deleteObjects(bucket, keys.slice(0, 10)); // already gone: still fine
    });

    it('lists with continuation tokens, max-keys per page', async () => {
      const keys = Array.from({ length: 25 }, (_, i) => `list/${String(i).padStart(3, '0')}`);
      await pool(keys, 8, (k) => s3.putObject(bucket, k, Buffer.from(`${k}!`)));
      await s3.putObject(bucket, 'listx', Buffer.from('outside the prefix'));
      const { proxy, c } = await proxied();
      const listed = [];
      for await (const o of c.listObjects(bucket, 'list/', { maxKeys: 7 })) listed.push(o);
      expect(listed.map((o) => o.key)).toEqual(keys);
      expect(listed.every((o) => o.size === 9)).toBe(true);
      // When each was written, by the server's clock (the pack store's grace period reads it).
      expect(listed.every((o) => Math.abs(o.lastModified - Date.now()) < 3_600_000)).toBe(true);
      expect(proxy.requests('GET')).toBe(4); // 7 + 7 + 7 + 4
    });

    it('fails with a coded error naming bucket and status, not the secret, on wrong credentials', async () => {
      const secret = 'definitely-not-the-secret-key-4711';
      const bad = client({ credentials: { accessKeyId: server.accessKey, secretAccessKey: secret } });
      const e = await expectCode(bad.putObject(bucket, 'nope', Buffer.from('x')), 'ERR_STORE_BACKEND');
      expect(e.message).toContain(`${bucket}/nope`);
      expect(e.message).toContain('403');
      expect(e.message).not.toContain(secret);
      const unknown = client({ credentials: { accessKeyId: 'NOSUCHKEYID', secretAccessKey: secret } });
      const e2 = await expectCode(unknown.getObjectBytes(bucket, 'ranged'), 'ERR_STORE_BACKEND');
      expect(e2.message).toContain('403');
      expect(await s3.headObject(bucket, 'nope')).toBeUndefined();
    });

    it('retries 5xx answers and dropped connections of idempotent requests', async () => {
      const { proxy, c } = await proxied({ attempts: 4 });
      const data = randomBytes(200_000);
      proxy.inject({ kind: 'status', status: 503, method: 'PUT' }, { kind: 'reset', method: 'PUT' });
      await c.putObject(bucket, 'retried', data);
      expect(proxy.requests('PUT')).toBe(3);
      proxy.inject({ kind: 'reset', method: 'GET' }, { kind: 'status', status: 500, method: 'GET' });
      expect((await c.getObjectBytes(bucket, 'retried')).equals(data)).toBe(true);
      proxy.inject({ kind: 'status', status: 502, method: 'HEAD' });
      expect((await c.headObject(bucket, 'retried'))?.size).toBe(data.length);
      proxy.inject({ kind: 'status', status: 503, method: 'POST' });
      await c.deleteObjects(bucket, ['retried']);
      expect(await s3.headObject(bucket, 'retried')).toBeUndefined();
      expect(proxy.pending()).toBe(0);
    });

    it('gives up after the configured attempts, and never resends a one-shot stream body', async () => {
      const { proxy, c } = await proxied({ attempts: 3 });
      proxy.inject(
        ...Array.from({ length: 3 }, () => ({ kind: 'status', status: 500, method: 'GET' }) as const),
      );
      const e = await expectCode(c.getObjectBytes(bucket, 'ranged'), 'ERR_STORE_BACKEND');
      expect(e.message).toContain('500');
      expect(proxy.requests('GET')).toBe(3);
      proxy.inject({ kind: 'status', status: 503, method: 'PUT' });
      const data = randomBytes(1000);
      await expectCode(
        c.putObject(bucket, 'one-shot', chunksOf(data, 100), data.length),
        'ERR_STORE_BACKEND',
      );
      expect(proxy.requests('PUT')).toBe(1);
      // A client error is not retried at all.
      proxy.inject({ kind: 'status', status: 400, method: 'HEAD' });
      await expectCode(c.headObject(bucket, 'ranged'), 'ERR_STORE_BACKEND');
      expect(proxy.requests('HEAD')).toBe(1);
    });

    it('resumes a read whose connection breaks mid-body from the next byte', async () => {
      const data = randomBytes(2 * MiB);
      await s3.putObject(bucket, 'resumed', data);
      const { proxy, c } = await proxied();
      proxy.inject({ kind: 'cut-body', after: 100_000, method: 'GET' }, { kind: 'cut-body', after: 700_000 });
      expect((await collect(c.getObject(bucket, 'resumed'))).equals(data)).toBe(true);
      expect(proxy.requests('GET')).toBe(3);
      proxy.inject({ kind: 'cut-body', after: 1000, method: 'GET' });
      const range = { offset: 12_345, length: 1 * MiB };
      const got = await c.getObjectBytes(bucket, 'resumed', range);
      expect(got.equals(data.subarray(range.offset, range.offset + range.length))).toBe(true);
      expect(proxy.requests('GET')).toBe(5);
    });

    it('frees the connection of a read abandoned part way', async () => {
      const data = randomBytes(4 * MiB);
      await s3.putObject(bucket, 'abandoned', data);
      const c = client({ connections: 1, timeoutMs: 5000 });
      for await (const chunk of c.getObject(bucket, 'abandoned')) {
        expect(chunk.length).toBeGreaterThan(0);
        break;
      }
      // With one connection, this read waits for it: a leaked body would stall it into a timeout.
      expect(
        (await c.getObjectBytes(bucket, 'abandoned', { offset: 7, length: 100 })).equals(
          data.subarray(7, 107),
        ),
      ).toBe(true);
    });

    it('keeps to its connection bound under concurrency, reusing connections', async () => {
      const data = randomBytes(64 * 1024);
      await s3.putObject(bucket, 'bounded', data);
      const { proxy, c } = await proxied({ connections: 3 });
      const reads = await Promise.all(Array.from({ length: 40 }, () => c.getObjectBytes(bucket, 'bounded')));
      expect(reads.every((r) => r.equals(data))).toBe(true);
      expect(proxy.peakConnections()).toBeGreaterThanOrEqual(1);
      expect(proxy.peakConnections()).toBeLessThanOrEqual(3);
      expect(proxy.requests('GET')).toBe(40);
    });
  });
}
