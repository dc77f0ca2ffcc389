/**
 * Hostile archives (fixtures/bad/archives/, see its README for what each attacks): every one must be
 * rejected with ERR_BAD_ARCHIVE and leave the store as it was: no path info, no directory (only orphan
 * blobs, which gc removes), no spool file in the temp dir. Nothing can be written outside the store
 * because nothing is ever extracted.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import type { DirectoryService } from '../../src/directory/service.js';
import { isFetchCacheError } from '../../src/errors.js';
import { ingestTarball, type TarballOptions } from '../../src/fetchers/tarball.js';
import { BAD_CASES } from '../helpers/archive-cases.js';
import { chunked, tarArchive, tarMember } from '../helpers/archives.js';

const badDir = new URL('../../fixtures/bad/archives/', import.meta.url);
const bad = (file: string) => readFileSync(new URL(file, badDir));
const spools = () =>
  readdirSync(tmpdir()).filter((f) => f.startsWith(`fetch-cache-zip-${process.pid}-`)).length;

/** A directory service that counts every directory written through it. */
function counting(inner: DirectoryService): { service: DirectoryService; puts: () => number } {
  let n = 0;
  const service: DirectoryService = {
    get: (d) => inner.get(d),
    put: (dir) => {
      n++;
      return inner.put(dir);
    },
    getRecursive: (d) => inner.getRecursive(d),
    putter: () => {
      const p = inner.putter();
      return {
        put: (dir) => {
          n++;
          return p.put(dir);
        },
        close: () => p.close(),
      };
    },
  };
  return { service, puts: () => n };
}

async function rejectsCleanly(bytes: Uint8Array, options: TarballOptions = {}) {
  const cache = await openCache({ memory: true });
  const dirs = counting(cache.directories);
  const spoolsBefore = spools();
  const error = await ingestTarball(
    chunked(bytes, 4096),
    { blobs: cache.blobs, directories: dirs.service },
    options,
  ).then(
    () => undefined,
    (e: unknown) => e,
  );
  let pathInfos = 0;
  for await (const _ of cache.pathInfos.list()) pathInfos++;
  return { error, pathInfos, directories: dirs.puts(), spoolsLeft: spools() - spoolsBefore };
}

describe('hostile archives are rejected with ERR_BAD_ARCHIVE and leave the store unchanged', () => {
  it('has a committed file for every case and no stray files', () => {
    const files = readdirSync(fileURLToPath(badDir)).filter((f) => f !== 'README.md');
    expect(files.sort()).toEqual(BAD_CASES.map((c) => c.file).sort());
    expect(BAD_CASES.length).toBeGreaterThanOrEqual(40);
    const readme = readFileSync(new URL('README.md', badDir), 'utf8');
    for (const c of BAD_CASES) expect(readme).toContain(`\`${c.file}\``);
  });

  for (const c of BAD_CASES) {
    it(`${c.file}: ${c.attack}`, async () => {
      const r = await rejectsCleanly(bad(c.file), c.options);
      expect(isFetchCacheError(r.error, 'ERR_BAD_ARCHIVE'), String(r.error)).toBe(true);
      expect(r.pathInfos).toBe(0);
      expect(r.directories).toBe(0);
      expect(r.spoolsLeft).toBe(0);
    });
  }

  it('the honest counterparts of the capped cases pass under the same caps', async () => {
    const cache = await openCache({ memory: true });
    const small = tarArchive(
      Array.from({ length: 900 }, (_, i) => tarMember({ name: `many/f${i}`, content: '' })),
    );
    await expect(ingestTarball(chunked(small), cache, { maxEntries: 1000 })).resolves.toBeDefined();
    const under = tarArchive([tarMember({ name: 'x/zeros', content: Buffer.alloc(1024 * 1024) })]);
    await expect(
      ingestTarball(chunked(under), cache, { maxUnpackedBytes: 2 * 1024 * 1024 }),
    ).resolves.toBeDefined();
  });

  it('stops reading a bomb as soon as the cap is crossed', async () => {
    const bytes = bad('gzip-bomb.tar.gz');
    let pulled = 0;
    async function* source() {
      for await (const chunk of chunked(bytes, 1024)) {
        pulled += chunk.length;
        yield chunk;
      }
    }
    const cache = await openCache({ memory: true });
    await expect(
      ingestTarball(source(), cache, { maxUnpackedBytes: 16 * 1024 * 1024 }),
    ).rejects.toMatchObject({
      code: 'ERR_BAD_ARCHIVE',
    });
    // 16 of the 64 MiB inside: about a quarter of the compressed bytes, not all of them.
    expect(pulled).toBeLessThan(bytes.length / 2);
  });

  it('names the offending member in the error', async () => {
    const r = await rejectsCleanly(bad('symlink-escape-write.tar'));
    expect(r.error).toMatchObject({ code: 'ERR_BAD_ARCHIVE', path: 'pkg/a/passwd' });
    expect(String((r.error as Error).message)).toContain("symlink 'pkg/a'");
  });
});
