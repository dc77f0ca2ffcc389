/**
 * Fuzzing tar, tar.gz and zip ingestion: 10,000 small archives (files,
 * directories, symlinks, hard links, pax and GNU records), mutated and fed
 * in random chunks to `ingestTarball` over a memory cache. Every case must
 * end — accepted or rejected with a FetchCacheError — within 5 s, and
 * nothing else may be thrown; an accepted tar's NAR hash computed on the
 * way (with the default hold window, a small one or none) must be the one
 * rendered from the store.
 */

import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { ingestTarball } from '../../src/fetchers/tarball.js';
import { computeNarSum } from '../../src/nar-render/nar-calc.js';
import { gnuLong, paxHeader, tarArchive, tarMember, zipArchive } from '../helpers/archives.js';
import { expectOnlyFetchCacheError, mutated, noHang, split } from '../helpers/mutate.js';

const nameArb = fc.constantFrom(
  'pkg/',
  'pkg/a',
  'pkg/b.txt',
  'pkg/sub/',
  'pkg/sub/c',
  'pkg/../x',
  'pkg/l',
  'other/d',
);

const tarMemberArb = fc.oneof(
  fc.record({ name: nameArb, content: fc.uint8Array({ maxLength: 700 }) }).map((m) => tarMember(m)),
  nameArb.map((name) => tarMember({ name, type: '5' })),
  fc
    .tuple(nameArb, fc.constantFrom('a', '../x', '/etc', 'sub/c'))
    .map(([name, linkname]) => tarMember({ name, type: '2', linkname })),
  fc.tuple(nameArb, nameArb).map(([name, linkname]) => tarMember({ name, type: '1', linkname })),
  fc.constantFrom(
    paxHeader({ path: 'pkg/pax-name' }),
    gnuLong('L', `pkg/${'l'.repeat(120)}`),
    paxHeader({ mtime: '1' }, true),
  ),
);

const tarArb = fc.array(tarMemberArb, { minLength: 1, maxLength: 5 }).map((ms) => tarArchive(ms));
const archiveArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: tarArb.map((b) => new Uint8Array(b)) },
  { weight: 2, arbitrary: tarArb.map((b) => new Uint8Array(gzipSync(b, { level: 1 }))) },
  {
    weight: 1,
    arbitrary: fc
      .array(
        fc.record({ name: nameArb, content: fc.uint8Array({ maxLength: 300 }), deflate: fc.boolean() }),
        {
          minLength: 1,
          maxLength: 4,
        },
      )
      .map((ms) => new Uint8Array(zipArchive(ms))),
  },
);

async function* stream(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield c;
}

describe('tarball ingestion fuzzing', () => {
  it('10,000 mutated archives end with a result or a FetchCacheError, never a hang', async () => {
    const cache = await openCache({ memory: true });
    let accepted = 0;
    let onePass = 0;
    await fc.assert(
      fc.asyncProperty(
        mutated(archiveArb),
        fc.array(fc.nat(), { maxLength: 4 }),
        fc.constantFrom(undefined, 0, 400),
        async (archive, cuts, narHoldBytes) => {
          let result: Awaited<ReturnType<typeof ingestTarball>>;
          try {
            result = await noHang(
              ingestTarball(stream(split(archive, cuts)), cache, {
                maxUnpackedBytes: 1 << 20,
                maxEntries: 1000,
                narHoldBytes,
              }),
              5_000,
            );
            accepted++;
          } catch (e) {
            expectOnlyFetchCacheError(e);
            return;
          }
          // The NAR hash computed on the way, whenever it could be, is the one rendered from the store.
          if (result.narSum !== undefined) {
            onePass++;
            expect(result.narSum).toEqual(await computeNarSum(result.node, cache));
          }
        },
      ),
      { numRuns: 10_000, seed: 0x7a5 },
    );
    expect(accepted).toBeGreaterThan(100);
    expect(onePass).toBeGreaterThan(accepted / 2);
    await cache.close();
  }, 120_000);
});
