/**
 * Chunk bytes in pack objects on real Ceph radosgw (s3-packs-suite.ts), named
 * by FETCH_CACHE_TEST_S3* (scripts/services/s3-rgw-up.sh prints them; .ci/run
 * starts it). Without them the suite is skipped, except in CI, where their
 * absence fails.
 */

import { describe, expect, it } from 'vitest';
import { s3TestServer } from '../storage/s3-suite.js';
import { describeS3PackSuite } from './s3-packs-suite.js';

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

if (server !== undefined) describeS3PackSuite('radosgw', server);
else
  describe.skip('S3 packs on radosgw: skipped, FETCH_CACHE_TEST_S3 is unset (scripts/services/s3-rgw-up.sh)', () => {
    it('needs a server', () => {});
  });
