/**
 * Where an archive ends, as Nix reads it: `nix-prefetch-url --unpack` (Nix 2.8, libarchive) stops at the
 * first all-zero tar header block, reads gzip members and bzip2/xz/zstd streams one after another until
 * then, and ignores what follows (later members, junk) — except that junk after zstd or xz data is an
 * error, as libarchive's decoders run on into it. Every case is made with the real compressors and, when
 * Nix is installed, checked against it live; the expected tree is always that of the first archive alone,
 * computed by us from its plain tar.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { ingestTarball } from '../../src/fetchers/tarball.js';
import { makeHash, toSRI } from '../../src/nix/hash.js';
import { chunked, paxHeader, tarArchive, tarMember } from '../helpers/archives.js';
import { nixAvailable, runNix, runNixOk } from '../helpers/nix.js';

const TOOLS = {
  gz: ['gzip', '-c'],
  zst: ['zstd', '-q', '-c'],
  xz: ['xz', '-c'],
  bz2: ['bzip2', '-c'],
} as const;
type Tool = keyof typeof TOOLS;
const z = (tool: Tool, data: Uint8Array): Buffer =>
  execFileSync(TOOLS[tool][0], TOOLS[tool].slice(1), { input: data });

/** Without its end-of-archive blocks (the members only). */
const members = (...m: Buffer[]) => Buffer.concat(m);
const ZEROS = Buffer.alloc(2048);
// The first archive: a file of zero blocks (whose data must not be taken for the end), one whose size comes
// from a pax record (header size 0), and a directory.
const A_MEMBERS = members(
  tarMember({ name: 'src/', type: '5' }),
  tarMember({ name: 'src/zeros', content: ZEROS }),
  paxHeader({ size: String(ZEROS.length) }),
  tarMember({ name: 'src/pax-sized', content: ZEROS, size: 0 }),
  tarMember({ name: 'src/a.txt', content: 'a\n' }),
);
const A = tarArchive([A_MEMBERS]);
const B = tarArchive([tarMember({ name: 'src/b.txt', content: 'b\n' })]);
const JUNK = randomBytes(3000);

async function ours(bytes: Uint8Array): Promise<string> {
  const cache = await openCache({ memory: true });
  try {
    const r = await ingestTarball(chunked(bytes, 1000), cache);
    return toSRI(makeHash('sha256', (await cache.narCalc.calculate(r.node)).narSha256));
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  } finally {
    await cache.close();
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fc-archive-end-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** `nix-prefetch-url --unpack` of the bytes: the SRI NAR hash, or its error. */
async function nix(name: string, bytes: Uint8Array): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, bytes);
  const r = await runNix(['--store', join(dir, 'store'), '--unpack', `file://${file}`], {
    bin: 'nix-prefetch-url' as 'nix',
  });
  if (r.code !== 0) return `error: ${r.stderr.trim()}`;
  return runNixOk(['hash', 'to-sri', '--type', 'sha256', r.stdout.trim()]);
}

const cases: [string, () => Buffer][] = [
  ['A.tar.gz, then a gzip member holding B', () => Buffer.concat([z('gz', A), z('gz', B)])],
  [
    'A.tar.gz, then a gzip member whose CRC is wrong',
    () => {
      const second = z('gz', B);
      second[second.length - 6]! ^= 1;
      return Buffer.concat([z('gz', A), second]);
    },
  ],
  ['A.tar.gz, then junk', () => Buffer.concat([z('gz', A), JUNK])],
  [
    'A.tar.gz, then a gzip magic and junk',
    () => Buffer.concat([z('gz', A), Buffer.from([0x1f, 0x8b]), JUNK]),
  ],
  ['A.tar with junk after the end, gzipped', () => z('gz', Buffer.concat([A, JUNK]))],
  ['A.tar, then junk', () => Buffer.concat([A, JUNK])],
  ['A.tar, one zero block, then B', () => Buffer.concat([A_MEMBERS, Buffer.alloc(512), B])],
  [
    'A.tar split over two gzip members (the first does not end it)',
    () => Buffer.concat([z('gz', A.subarray(0, 1536)), z('gz', A.subarray(1536))]),
  ],
  [
    'the same, then junk',
    () => Buffer.concat([z('gz', A.subarray(0, 1536)), z('gz', A.subarray(1536)), JUNK]),
  ],
  ['A.tar.zst, then a frame holding B', () => Buffer.concat([z('zst', A), z('zst', B)])],
  ['A.tar.xz, then a stream holding B', () => Buffer.concat([z('xz', A), z('xz', B)])],
  ['A.tar.bz2, then a stream holding B', () => Buffer.concat([z('bz2', A), z('bz2', B)])],
  ['A.tar.bz2, then junk', () => Buffer.concat([z('bz2', A), JUNK])],
];

describe('an archive ends where Nix stops reading it', () => {
  for (const [name, make] of cases) {
    it(`${name}: the tree of A alone`, async () => {
      const bytes = make();
      const expected = await ours(A);
      expect(expected).toMatch(/^sha256-/);
      expect(await ours(bytes)).toBe(expected);
      if (nixAvailable()) expect(await nix(name.replaceAll(/\W+/g, '-'), bytes)).toBe(expected);
    });
  }

  for (const tool of ['zst', 'xz'] as const) {
    it(`A.tar.${tool}, then junk: refused, as Nix refuses it (its decoder reads on into the junk)`, async () => {
      const bytes = Buffer.concat([z(tool, A), JUNK]);
      expect(await ours(bytes)).toMatch(/^ERR_BAD_ARCHIVE/);
      if (nixAvailable()) expect(await nix(`junk.tar.${tool}`, bytes)).toMatch(/^error:/);
    });
  }

  it('the compressed unit that holds the end is still checked: a gzip member with a wrong CRC is refused', async () => {
    // Nix 2.8's libarchive never checks a gzip CRC; `gzip -t` (and we) refuse the file.
    const bad = z('gz', A);
    bad[bad.length - 6]! ^= 1;
    expect(await ours(bad)).toMatch(/^ERR_BAD_ARCHIVE.*CRC/);
  });
});
