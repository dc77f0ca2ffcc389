/**
 * `fetch-cache nar` into a file, a pipe, an appended file and /dev/null (src/fs/fd-sink.ts: large
 * files go out with sendfile from the pack files) gives the bytes of `nix-store --dump` of the source
 * (when Nix is installed) and of the byte path (stdout a socket, as a Node parent gives it); a
 * damaged chunk fails with ERR_INTEGRITY, a reader that goes away with one line and exit 1.
 */

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LevelBlobService } from '../../src/blob/leveldb.js';
import { openCache } from '../../src/cache.js';
import { randomBytes } from '../blob/conformance.js';
import { flipChunkByte } from '../helpers/chunk-damage.js';
import { CLI_MAIN, runCli } from '../helpers/cli.js';
import { nixAvailable } from '../helpers/nix.js';

let work: string;
let root: string;
let src: string;
let storePath: string;
let reference: Buffer;

/** `nar` with stdout redirected by sh as `redirect` says; its exit code and stderr. */
function narTo(
  redirect: string,
  env: Record<string, string> = {},
  shell = 'sh',
): { code: number; stderr: string } {
  const r = spawnSync(shell, ['-c', `"$NODE" "$CLI" --root "$ROOT" nar "$P" ${redirect}`], {
    env: { ...process.env, NODE: process.execPath, CLI: CLI_MAIN, ROOT: root, P: storePath, ...env },
    encoding: 'utf8',
  });
  return { code: r.status ?? 1, stderr: r.stderr };
}

/** `nar` through a Node pipe (a socket): the byte path. */
function narBytes(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, '--root', root, 'nar', storePath], { stdio: 'pipe' });
    const parts: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => parts.push(c));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(parts)) : reject(new Error(`exit ${code}`)),
    );
    child.stdin.end();
  });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-nar-out-'));
  root = join(work, 'root');
  src = join(work, 'src');
  mkdirSync(join(src, 'd'), { recursive: true });
  writeFileSync(join(src, 'a'), 'small\n');
  writeFileSync(join(src, 'd', 'big'), randomBytes(6 << 20, 3));
  writeFileSync(join(src, 'd', 'two'), randomBytes((1 << 20) + 5, 4));
  const added = await runCli(['--root', root, 'add', src]);
  expect(added.code).toBe(0);
  storePath = added.stdout.trim();
  reference = await narBytes();
  if (nixAvailable()) {
    const dump = spawnSync('nix-store', ['--dump', src], { maxBuffer: 1 << 26 });
    expect(dump.status).toBe(0);
    expect(reference.equals(dump.stdout)).toBe(true);
  }
}, 60_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('nar to a file, a pipe or a device', () => {
  it('writes the same bytes into a file, through a pipe, and appended to a file', () => {
    const file = join(work, 'out.nar');
    expect(narTo(`> "${file}"`)).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(file).equals(reference)).toBe(true);

    const piped = join(work, 'piped.nar');
    expect(narTo(`| cat > "${piped}"`)).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(piped).equals(reference)).toBe(true);

    // O_APPEND refuses sendfile: the segments are copied instead.
    const appended = join(work, 'appended.nar');
    writeFileSync(appended, 'head');
    expect(narTo(`>> "${appended}"`)).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(appended).subarray(4).equals(reference)).toBe(true);

    expect(narTo('> /dev/null')).toEqual({ code: 0, stderr: '' });
  });

  it('reports a reader that went away in one line with exit 1, on both paths', () => {
    for (const env of [{}, { FETCH_CACHE_NO_SENDFILE: '1' }]) {
      // bash: the CLI's own status is the first of the pipeline's.
      const r = narTo(`| head -c 1000 > /dev/null; exit $\{PIPESTATUS[0]}`, env, 'bash');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^ERR_IO: cannot write to stdout: EPIPE \(the reader went away\)\n$/);
    }
  });

  it('fails with ERR_INTEGRITY and a short output when a chunk of a large file is damaged', async () => {
    const cache = await openCache({ root });
    const blobs = cache.blobs as LevelBlobService;
    let victim: Uint8Array | undefined;
    for await (const info of cache.pathInfos.list()) {
      const top = await cache.directories.get((info.node as { digest: Uint8Array }).digest);
      const d = [...top!].find((e) => Buffer.from(e.name).toString() === 'd')!.node as { digest: Uint8Array };
      const big = [...(await cache.directories.get(d.digest))!].find(
        (e) => Buffer.from(e.name).toString() === 'big',
      )!.node as { digest: Uint8Array };
      const chunks = (await blobs.stat(big.digest))!.chunks;
      victim = chunks[Math.floor(chunks.length / 2)]!.digest;
    }
    await flipChunkByte(blobs.chunkStore, victim!, 9);
    await cache.close();
    try {
      const file = join(work, 'damaged.nar');
      const r = narTo(`> "${file}"`);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^ERR_INTEGRITY: damaged chunk at offset \d+ of blob [0-9a-f]{64}/);
      const got = readFileSync(file);
      expect(got.length).toBeLessThan(reference.length);
      expect(got.equals(reference.subarray(0, got.length))).toBe(true);
    } finally {
      const again = await openCache({ root });
      await flipChunkByte((again.blobs as LevelBlobService).chunkStore, victim!, 9);
      await again.close();
    }
    const file = join(work, 'repaired.nar');
    expect(narTo(`> "${file}"`)).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(file).equals(reference)).toBe(true);
  });
});
