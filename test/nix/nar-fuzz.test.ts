/**
 * Fuzzing the strict NAR parser: 10,000 mutated NARs of random trees, fed
 * in random chunks. On any input the parser either accepts or throws a
 * FetchCacheError (ERR_BAD_NAR) — never another exception — and a NAR it
 * accepts has exactly as many bytes as it consumed.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFetchCacheError } from '../../src/errors.js';
import { encodeNar, type NarTree } from '../../src/nix/nar/encoder.js';
import { NarParser } from '../../src/nix/nar/parser.js';
import { nameArb } from '../helpers/arbitraries.js';
import { expectOnlyFetchCacheError, mutated, split } from '../helpers/mutate.js';

/** Small trees: mutations are about structure, not big contents. */
const treeArb: fc.Arbitrary<NarTree> = fc.letrec<{ tree: NarTree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small' },
    fc.record({
      type: fc.constant('regular' as const),
      executable: fc.boolean(),
      contents: fc.uint8Array({ maxLength: 24 }),
    }),
    fc.record({ type: fc.constant('symlink' as const), target: fc.string({ minLength: 1, maxLength: 12 }) }),
    fc
      .uniqueArray(fc.tuple(nameArb, tie('tree')), {
        maxLength: 4,
        selector: ([n]) => Buffer.from(n).toString('hex'),
      })
      .map((entries) => ({
        type: 'directory' as const,
        entries: new Map(entries.map(([n, t]) => [n, t] as [Uint8Array, NarTree])),
      })),
  ),
})).tree;

describe('NAR parser fuzzing', () => {
  it('throws only FetchCacheError on 10,000 mutated NARs, streamed in random chunks', () => {
    let rejected = 0;
    fc.assert(
      fc.property(mutated(treeArb.map(encodeNar)), fc.array(fc.nat(), { maxLength: 6 }), (nar, cuts) => {
        const p = new NarParser();
        try {
          for (const chunk of split(nar, cuts)) p.push(chunk);
          p.end();
          expect(p.bytesConsumed).toBe(nar.length);
        } catch (e) {
          expectOnlyFetchCacheError(e);
          expect(isFetchCacheError(e, 'ERR_BAD_NAR')).toBe(true);
          rejected++;
        }
      }),
      { numRuns: 10_000, seed: 0x4e4152 },
    );
    // The mutations must actually reach the error paths.
    expect(rejected).toBeGreaterThan(3_000);
  });
});
