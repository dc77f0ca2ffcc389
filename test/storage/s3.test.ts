/**
 * The S3 client (src/storage/s3.ts): store URLs and credentials, then the
 * whole client suite (s3-suite.ts) against real Ceph radosgw, named by
 * FETCH_CACHE_TEST_S3* (scripts/services/s3-rgw-up.sh prints them; .ci/run
 * starts it). Without them the suite is skipped, except in CI, where their
 * absence fails.
 */

import { describe, expect, it } from 'vitest';
import { FetchCacheError } from '../../src/errors.js';
import { credentialsFromEnv, parseS3Url, S3Client } from '../../src/storage/s3.js';
import { describeS3Suite, s3TestServer } from './s3-suite.js';

describe('store URL', () => {
  it('parses bucket, prefix, endpoint and region', () => {
    expect(parseS3Url('s3://packs/team/a?endpoint=http://127.0.0.1:17480&region=eu-west-1', {})).toEqual({
      bucket: 'packs',
      prefix: 'team/a/',
      endpoint: 'http://127.0.0.1:17480',
      region: 'eu-west-1',
    });
    expect(parseS3Url('s3://packs', {})).toEqual({
      bucket: 'packs',
      prefix: '',
      endpoint: 'https://s3.us-east-1.amazonaws.com',
      region: 'us-east-1',
    });
    expect(parseS3Url('s3://packs/p/?endpoint=https://s3.example.org/base/', {})).toMatchObject({
      prefix: 'p/',
      endpoint: 'https://s3.example.org/base',
    });
  });

  it('takes the region from AWS_REGION, then AWS_DEFAULT_REGION, when the URL has none', () => {
    expect(parseS3Url('s3://b-1', { AWS_REGION: 'ap-south-1', AWS_DEFAULT_REGION: 'x-1' }).region).toBe(
      'ap-south-1',
    );
    expect(parseS3Url('s3://b-1', { AWS_DEFAULT_REGION: 'ca-central-1' })).toMatchObject({
      region: 'ca-central-1',
      endpoint: 'https://s3.ca-central-1.amazonaws.com',
    });
    expect(parseS3Url('s3://b-1?region=us-west-2', { AWS_REGION: 'ap-south-1' }).region).toBe('us-west-2');
  });

  it.each([
    ['http://bucket/x', 'scheme'],
    ['s3://', 'bucket name'],
    ['s3://Upper_Case', 'bucket name'],
    ['s3://key:secret@bucket', 'credentials'],
    ['s3://bucket?endpoint=ftp://host', 'endpoint'],
    ['s3://bucket?endpoint=http://k:secret@host', 'endpoint'],
    ['s3://bucket?endpoint=http%3A%2F%2Fk%3Asecret%40host%2Fx%3Fq', 'endpoint'],
    ['s3://bucket?bogus=1', 'unknown parameter'],
    ['s3://bucket?region=../x', 'region'],
  ])('refuses %s (ERR_BAD_URL)', (url, why) => {
    let error: unknown;
    try {
      parseS3Url(url, {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FetchCacheError);
    expect((error as FetchCacheError).code).toBe('ERR_BAD_URL');
    expect((error as FetchCacheError).message).toContain(why);
    expect((error as FetchCacheError).message).not.toContain('secret');
  });
});

describe('credentials', () => {
  it('come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN', () => {
    expect(credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'sk' })).toEqual({
      accessKeyId: 'id',
      secretAccessKey: 'sk',
      sessionToken: undefined,
    });
    expect(
      credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'sk', AWS_SESSION_TOKEN: 'tok' })
        .sessionToken,
    ).toBe('tok');
  });

  it('missing ones are a coded error (at client creation, before any request)', () => {
    const location = parseS3Url('s3://bucket?endpoint=http://127.0.0.1:1', {});
    expect(() => S3Client.forLocation(location, { AWS_ACCESS_KEY_ID: 'id' })).toThrow(
      expect.objectContaining({
        code: 'ERR_STORE_BACKEND',
        message: expect.stringContaining('AWS_SECRET_ACCESS_KEY'),
      }),
    );
  });
});

it('reports an unreachable endpoint as ERR_STORE_BACKEND after its retries', async () => {
  const c = new S3Client({
    endpoint: 'http://127.0.0.1:1',
    region: 'us-east-1',
    credentials: { accessKeyId: 'id', secretAccessKey: 'secret-never-shown' },
    attempts: 2,
    backoffMs: 1,
  });
  try {
    const e = await c.headObject('bucket', 'key').then(
      () => undefined,
      (err: unknown) => err as FetchCacheError,
    );
    expect(e?.code).toBe('ERR_STORE_BACKEND');
    expect(e?.message).toContain('bucket/key');
    expect(e?.message).toContain('ECONNREFUSED');
    expect(e?.message).not.toContain('secret-never-shown');
  } finally {
    await c.close();
  }
});

const server = s3TestServer('FETCH_CACHE_TEST_S3');

it.runIf(process.env.CI === 'true')(
  'has a real S3 server in CI (FETCH_CACHE_TEST_S3, started by .ci/run)',
  () => {
    expect(
      server,
      'FETCH_CACHE_TEST_S3 is unset: .ci/run must start radosgw (scripts/services/s3-rgw-up.sh)',
    ).toBeDefined();
  },
);

if (server !== undefined) describeS3Suite('S3 client against radosgw (FETCH_CACHE_TEST_S3)', server);
else
  describe.skip('S3 client against radosgw: skipped, FETCH_CACHE_TEST_S3 is unset (scripts/services/s3-rgw-up.sh)', () => {
    it('needs a server', () => {});
  });
