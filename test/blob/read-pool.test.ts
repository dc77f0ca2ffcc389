/**
 * The read pool (src/blob/read-pool.ts): worker threads that read a run of
 * chunks from a file and say which chunks hash to their BLAKE3 digests. The
 * blob suites read every large blob through it; here its own contract: the
 * bytes and the verdicts, a short file, a missing file, a closed pool, a
 * service whose pool is gone, and a process that never closes its pool.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ReadPool } from '../../src/blob/read-pool.js';
import { blake3 } from '../../src/nix/hashing.js';
import { randomBytes } from './conformance.js';

const tmp = mkdtempSync(join(tmpdir(), 'fc-read-pool-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const data = randomBytes(700_000, 31);
const file = join(tmp, 'run.bin');
writeFileSync(file, data);
// Three chunks of the file: 100 bytes in, then two more back to back.
const starts = [0, 300_000, 450_000];
const sizes = [300_000, 150_000, 200_000];
const offset = 100;
const digests = starts.map((s, i) => blake3(data.subarray(offset + s, offset + s + sizes[i]!)));

describe('ReadPool', () => {
  it('reads a run and verifies each chunk on a worker; a wrong digest is reported, not thrown', async () => {
    const pool = new ReadPool(2);
    try {
      const wrong = [digests[0]!, blake3(new Uint8Array([1])), digests[2]!];
      const [good, bad] = await Promise.all([
        pool.read({ file, offset, length: 650_000, starts, sizes, digests }),
        pool.read({ file, offset, length: 650_000, starts, sizes, digests: wrong }),
      ]);
      expect(Buffer.from(good.bytes).equals(data.subarray(offset, offset + 650_000))).toBe(true);
      expect([...good.ok]).toEqual([1, 1, 1]);
      expect([...bad.ok]).toEqual([1, 0, 1]);
    } finally {
      await pool.close();
    }
  });

  it('gives back what a short file has, and chunks past its end are not verified', async () => {
    const pool = new ReadPool(1);
    try {
      const r = await pool.read({ file, offset: 200_000, length: 650_000, starts, sizes, digests });
      expect(r.bytes.length).toBe(data.length - 200_000);
      expect([...r.ok]).toEqual([0, 0, 0]);
    } finally {
      await pool.close();
    }
  });

  it('rejects a missing file with its code, and any read after close', async () => {
    const pool = new ReadPool(1);
    await expect(
      pool.read({
        file: join(tmp, 'gone.pack'),
        offset: 0,
        length: 10,
        starts: [0],
        sizes: [10],
        digests: [digests[0]!],
      }),
    ).rejects.toMatchObject({ code: 'ENOENT' });
    await pool.close();
    await expect(pool.read({ file, offset, length: 10, starts: [], sizes: [], digests: [] })).rejects.toThrow(
      /closed/,
    );
  });

  it('does not keep a process alive that never closes it', () => {
    const built = fileURLToPath(new URL('../../dist/blob/read-pool.js', import.meta.url));
    expect(existsSync(built), 'dist/ is built (npm run build)').toBe(true);
    const script = `
      import { ReadPool } from ${JSON.stringify(built)};
      const pool = new ReadPool(2);
      const r = await pool.read({ file: ${JSON.stringify(file)}, offset: 0, length: 5, starts: [0], sizes: [5], digests: [new Uint8Array(32)] });
      console.log(r.bytes.length, r.ok[0]);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('5 0');
  });
});
