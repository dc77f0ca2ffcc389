/**
 * Fuzzing the narinfo parser with 10,000 inputs: mutated real-looking
 * narinfos (bytes edited, then decoded as text) and arbitrary strings. It
 * must accept or throw FetchCacheError — nothing else.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { expectOnlyFetchCacheError, mutated } from '../helpers/mutate.js';

const GOOD = [
  'StorePath: /nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7x-hello-2.12',
  'URL: nar/1yffxcd1bdrby5x48rwwhpbpcyz8g2ni3ng5swf6a1la7b9v3ysn.nar.xz',
  'Compression: xz',
  'FileHash: sha256:1yffxcd1bdrby5x48rwwhpbpcyz8g2ni3ng5swf6a1la7b9v3ysn',
  'FileSize: 12345',
  'NarHash: sha256:1yffxcd1bdrby5x48rwwhpbpcyz8g2ni3ng5swf6a1la7b9v3ysn',
  'NarSize: 54321',
  'References: 0c6kzph7l0dcbfmjap64f0czdafn3b7x-hello-2.12 9krlzvny65gdc8s7kpb6lkx8cd02c25c-glibc-2.37',
  'Deriver: 5gy1ihm9h1k7r5lh4qz1x0zk4mvp3x0c-hello-2.12.drv',
  'Sig: cache.nixos.org-1:rH4wxlNRbTbViQon40C15og5zlcFEphwoF26IQGHi2QvlLTIDD1yCk6EKmcsoWyRz+ZdCOj4U9ZgnpckJ8Xn9Q==',
  'CA: fixed:r:sha256:1yffxcd1bdrby5x48rwwhpbpcyz8g2ni3ng5swf6a1la7b9v3ysn',
  '',
].join('\n');

describe('narinfo parser fuzzing', () => {
  it('throws only FetchCacheError on 10,000 mutated and random texts', () => {
    const input = fc.oneof(
      {
        weight: 4,
        arbitrary: mutated(fc.constant(new Uint8Array(Buffer.from(GOOD)))).map((b) =>
          Buffer.from(b).toString('utf8'),
        ),
      },
      { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
      {
        weight: 1,
        arbitrary: fc
          .array(
            fc.tuple(
              fc.constantFrom('StorePath', 'URL', 'NarHash', 'NarSize', 'References', 'Sig', 'CA', 'X'),
              fc.string({ maxLength: 60 }),
            ),
            { maxLength: 8 },
          )
          .map((ls) => ls.map(([k, v]) => `${k}: ${v}\n`).join('')),
      },
    );
    let accepted = 0;
    fc.assert(
      fc.property(input, (text) => {
        try {
          parseNarInfo(text);
          accepted++;
        } catch (e) {
          expectOnlyFetchCacheError(e);
        }
      }),
      { numRuns: 10_000, seed: 0x4e49 },
    );
    expect(accepted).toBeGreaterThan(0);
  });
});
