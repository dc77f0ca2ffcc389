/**
 * Chunk bytes in pack objects on OpenStack Swift's s3api (s3-packs-suite.ts),
 * a stricter S3 dialect (Content-MD5 on DeleteObjects, no conditional PUT).
 * Runs when FETCH_CACHE_TEST_SWIFT* are set (scripts/services/s3-swift-up.sh
 * prints them; `npm run test:swift` starts Swift and runs the S3 files);
 * CI does not start Swift, so without them this file is skipped everywhere.
 */

import { describe, it } from 'vitest';
import { s3TestServer } from '../storage/s3-suite.js';
import { describeS3PackSuite } from './s3-packs-suite.js';

const server = s3TestServer('FETCH_CACHE_TEST_SWIFT');

if (server !== undefined) describeS3PackSuite('Swift s3api', server);
else
  describe.skip('S3 packs on Swift s3api: skipped, FETCH_CACHE_TEST_SWIFT is unset (scripts/services/s3-swift-up.sh)', () => {
    it('needs a server', () => {});
  });
