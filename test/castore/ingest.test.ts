/**
 * `ingestEntries()`: entry streams in any children-before-parents order give
 * the castore tree whose digest snix computes, and malformed streams fail
 * with a coded error.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { b3ToHex } from '../../src/castore/digest.js';
import { type IngestEntry, ingestEntries } from '../../src/castore/ingest.js';
import { isFetchCacheError } from '../../src/errors.js';

const enc = new TextEncoder();
const p = (s: string) => enc.encode(s);

let cache: Cache;
beforeAll(async () => {
  cache = await openCache({ memory: true });
});
afterAll(async () => {
  await cache.close();
});

async function* lazy(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

describe('ingestEntries', () => {
  it("builds snix's DIRECTORY_COMPLICATED from entries (digest 3f951a15…, size 5)", async () => {
    const entries: IngestEntry[] = [
      { type: 'file', path: p('keep/.keep'), executable: false, contents: new Uint8Array() },
      { type: 'directory', path: p('keep') },
      { type: 'symlink', path: p('aa'), target: p('/nix/store/somewhereelse') },
      { type: 'file', path: p('.keep'), executable: false, contents: lazy(new Uint8Array()) },
      { type: 'directory', path: new Uint8Array() },
    ];
    const root = await ingestEntries(entries, cache);
    expect(root.type).toBe('directory');
    if (root.type !== 'directory') return;
    expect(b3ToHex(root.digest)).toBe('3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a');
    expect(root.size).toBe(5);
    expect(await cache.directories.get(root.digest)).toBeDefined();
  });

  it('does not depend on the order of siblings', async () => {
    const a: IngestEntry[] = [
      { type: 'directory', path: p('x') },
      { type: 'file', path: p('y'), executable: true, contents: p('hello') },
      { type: 'directory', path: new Uint8Array() },
    ];
    const b = [a[1]!, a[0]!, a[2]!];
    const ra = await ingestEntries(a, cache);
    const rb = await ingestEntries(b, cache);
    expect(ra).toEqual(rb);
  });

  it('a single file or symlink can be the root', async () => {
    const f = await ingestEntries(
      [{ type: 'file', path: new Uint8Array(), executable: true, contents: p('hi') }],
      cache,
    );
    expect(f).toMatchObject({ type: 'file', size: 2, executable: true });
    const s = await ingestEntries([{ type: 'symlink', path: new Uint8Array(), target: p('../x') }], cache);
    expect(s).toMatchObject({ type: 'symlink' });
  });

  it.each([
    ['no root', [{ type: 'file', path: p('a'), executable: false, contents: p('') }]],
    [
      'an entry after the root',
      [
        { type: 'directory', path: new Uint8Array() },
        { type: 'file', path: p('a'), executable: false, contents: p('') },
      ],
    ],
    [
      'an entry whose parent never comes',
      [
        { type: 'file', path: p('d/a'), executable: false, contents: p('') },
        { type: 'directory', path: new Uint8Array() },
      ],
    ],
    [
      'a duplicate name',
      [
        { type: 'file', path: p('a'), executable: false, contents: p('1') },
        { type: 'symlink', path: p('a'), target: p('x') },
        { type: 'directory', path: new Uint8Array() },
      ],
    ],
    [
      'an invalid name',
      [
        { type: 'file', path: p('..'), executable: false, contents: p('1') },
        { type: 'directory', path: new Uint8Array() },
      ],
    ],
  ] as [string, IngestEntry[]][])('rejects %s with ERR_BAD_DIRECTORY', async (_, entries) => {
    await expect(ingestEntries(entries, cache)).rejects.toSatisfy((e: unknown) =>
      isFetchCacheError(e, 'ERR_BAD_DIRECTORY'),
    );
  });

  it('propagates a failing content stream and stops', async () => {
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield p('x');
      throw new Error('disk on fire');
    }
    await expect(
      ingestEntries(
        [
          { type: 'file', path: p('a'), executable: false, contents: broken() },
          { type: 'directory', path: new Uint8Array() },
        ],
        cache,
      ),
    ).rejects.toThrow('disk on fire');
  });
});
