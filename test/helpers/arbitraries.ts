/**
 * fast-check arbitraries shared by the property tests: valid NAR/castore
 * entry names (unicode, binary, names whose UTF-16 and UTF-8 orders differ,
 * the 255-byte limit) and random in-memory trees.
 */

import fc from 'fast-check';
import type { NarTree } from '../../src/nix/nar/encoder.js';
import { invalidNameReason } from '../../src/nix/nar/wire.js';

const utf8 = new TextEncoder();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export const nameArb: fc.Arbitrary<Uint8Array> = fc
  .oneof(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }).map((s) => utf8.encode(s)),
    fc.uint8Array({ minLength: 1, maxLength: 10 }),
    fc.constantFrom(
      utf8.encode('B'),
      utf8.encode('a'),
      utf8.encode('\u{1F600}'),
      utf8.encode('\uFF5E'),
      new Uint8Array(255).fill(0x41),
    ),
  )
  .filter((n) => invalidNameReason(n) === undefined);

/** Random trees: small and 8–20 KB files (executable or not), symlinks, directories of up to 5 entries. */
export const narTreeArb: fc.Arbitrary<NarTree> = fc.letrec<{ tree: NarTree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({
      type: fc.constant('regular' as const),
      executable: fc.boolean(),
      contents: fc.oneof(
        { weight: 5, arbitrary: fc.uint8Array({ maxLength: 40 }) },
        { weight: 1, arbitrary: fc.uint8Array({ minLength: 8000, maxLength: 20000 }) },
      ),
    }),
    fc.record({
      type: fc.constant('symlink' as const),
      target: fc.uint8Array({ minLength: 1, maxLength: 30 }).filter((t) => !t.includes(0)),
    }),
    fc
      .uniqueArray(fc.tuple(nameArb, tie('tree')), { selector: ([n]) => hex(n), maxLength: 5 })
      .map((list): NarTree => ({ type: 'directory', entries: new Map(list) })),
  ),
})).tree;
