/**
 * The S3 client's suite (s3-suite.ts) against OpenStack Swift's s3api, a
 * stricter S3 dialect than radosgw (Content-MD5 required on DeleteObjects, no
 * conditional PUT). Runs when FETCH_CACHE_TEST_SWIFT* are set
 * (scripts/services/s3-swift-up.sh prints them); CI does not start Swift, so
 * without them this file is skipped everywhere.
 */

import { describe, it } from 'vitest';
import { describeS3Suite, s3TestServer } from './s3-suite.js';

const server = s3TestServer('FETCH_CACHE_TEST_SWIFT');

if (server !== undefined) describeS3Suite('S3 client against Swift s3api (FETCH_CACHE_TEST_SWIFT)', server);
else
  describe.skip('S3 client against Swift s3api: skipped, FETCH_CACHE_TEST_SWIFT is unset (scripts/services/s3-swift-up.sh)', () => {
    it('needs a server', () => {});
  });
