/**
 * A full disk never wedges a root (issue 17 item 6), on a 40 MiB tmpfs (so
 * it needs root, as CI has): a fetch that runs out of space fails with
 * ERR_IO and cuts its pack back to whole records; with the disk then filled
 * to the last byte by something else, `stats`, `path-info`, `nar`, `serve`
 * and `gc` still open the root (the root's reserve gives LevelDB the room it
 * writes in while opening: backends/level-db.ts), and gc gives the failed fetch's
 * space back without anyone deleting files by hand — also when `serve` has
 * held the database open since before the disk filled (its LevelDB then
 * writes gc's deletes into a full disk: the reserve goes to them).
 */

import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statfsSync,
  statSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACK_MAGIC, RECORD_HEADER } from '../../src/blob/packs.js';
import { sha256 } from '../../src/nix/hashing.js';
import { CLI_MAIN, cliBuilt, REPO_ROOT, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { bytes } from '../helpers/ops-store.js';
import { startServe } from '../helpers/processes.js';

const isRoot = process.getuid?.() === 0;
let mountPoint: string | undefined;
let http: TestServer;

beforeAll(async () => {
  if (!isRoot || !cliBuilt()) return;
  mountPoint = mkdtempSync(join(tmpdir(), 'fc-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mountPoint]);
  if (r.status !== 0) throw new Error(`mount failed: ${r.stderr}`);
  http = await startServer();
  http.route('/small.bin', { body: bytes(61, 18 << 20) });
  http.route('/large.bin', { body: bytes(62, 40 << 20) });
});

afterAll(async () => {
  await http?.close();
  if (mountPoint !== undefined) {
    spawnSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  }
});

const free = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Whether a pack holds whole records only (no torn tail). */
function wholeRecords(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const size = statSync(file).size;
    const head = Buffer.alloc(RECORD_HEADER);
    let at = PACK_MAGIC.length;
    while (at + RECORD_HEADER <= size) {
      readSync(fd, head, 0, RECORD_HEADER, at);
      at += RECORD_HEADER + head.readUInt32LE(0);
    }
    return at === size;
  } finally {
    closeSync(fd);
  }
}

/** Fill the file system of `dir` to the last byte, with a file outside the cache root. */
function fillUp(dir: string): void {
  const fd = openSync(join(dir, 'filler'), 'w');
  const block = Buffer.alloc(64 << 10, 1);
  try {
    for (;;) writeSync(fd, block);
  } catch {
    // ENOSPC: full
  }
  try {
    for (;;) writeSync(fd, block.subarray(0, 512));
  } catch {
    // the last few blocks
  }
  closeSync(fd);
}

/** `fetch-cache nar PATH`: its exit code and the sha256 (nix32-free hex) of what it wrote. */
function narSha256(root: string, path: string): Promise<{ code: number; sha256: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_MAIN, 'nar', path, '--root', root], { cwd: REPO_ROOT });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (code) =>
      resolve({ code: code ?? 1, sha256: Buffer.from(sha256(Buffer.concat(out))).toString('hex'), stderr }),
    );
  });
}

describe.skipIf(!isRoot || !cliBuilt())('a full disk (needs root, to mount a 40 MiB tmpfs)', () => {
  it('a failed writer leaves whole records; every command opens the full root; gc gives the space back', async () => {
    const mnt = mountPoint!;
    const root = join(mnt, 'root');
    const small = await runCli(['fetch', 'url', http.url('/small.bin'), '--root', root, '--json']);
    expect(small.code, small.stderr).toBe(0);
    const smallPath = (JSON.parse(small.stdout) as { path: string }).path;
    const large = await runCli(['fetch', 'url', http.url('/large.bin'), '--root', root]);
    expect(large.code).toBe(1);
    expect(large.stderr).toMatch(/^ERR_IO: .*(No space left on device|short write)/m);
    for (const name of readdirSync(join(root, 'packs'))) {
      expect(wholeRecords(join(root, 'packs', name)), `${name} ends in whole records`).toBe(true);
    }

    fillUp(mnt);
    expect(free(mnt)).toBeLessThan(64 << 10);

    const stats = await runCli(['stats', '--root', root, '--json']);
    expect(stats.code, stats.stderr).toBe(0);
    const before = JSON.parse(stats.stdout) as {
      paths: number;
      packBytes: number;
      unreachable: { bytes: number };
    };
    expect(before.paths).toBe(1);
    const list = await runCli(['path-info', '--all', '--root', root, '--json']);
    expect(list.code, list.stderr).toBe(0);
    const info = (JSON.parse(list.stdout) as { path: string; narHash: string }[])[0]!;
    expect(info.path).toBe(smallPath);
    const nar = await narSha256(root, smallPath);
    expect(nar.code, nar.stderr).toBe(0);
    expect(`sha256-${Buffer.from(nar.sha256, 'hex').toString('base64')}`).toBe(info.narHash);
    const serve = await startServe(root);
    try {
      const res = await fetch(
        `${serve.url}/${smallPath.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`,
      );
      expect(res.status).toBe(200);
    } finally {
      await serve.stop();
    }

    const freeBefore = free(mnt);
    const gc = await runCli(['gc', '--root', root, '--json']);
    expect(gc.code, gc.stderr).toBe(0);
    // What the failed fetch wrote is given back: only the small file's pack is left.
    const packBytes = readdirSync(join(root, 'packs')).reduce(
      (n, name) => n + statSync(join(root, 'packs', name)).size,
      0,
    );
    expect(packBytes).toBeLessThan((18 << 20) + (1 << 20));
    expect(free(mnt) - freeBefore).toBeGreaterThan(2 << 20);
    const v = await runCli(['verify', '--all', '--root', root, '--json']);
    expect(JSON.parse(v.stdout)).toMatchObject({ checked: 1, damaged: [] });
    expect(readFileSync(join(root, 'layout.json'), 'utf8')).toContain('"layout"');
  }, 120_000);

  it('with serve hosting the database since before the disk filled, gc still gives the space back', async () => {
    const mnt = mountPoint!;
    for (const name of readdirSync(mnt)) rmSync(join(mnt, name), { recursive: true, force: true });
    const root = join(mnt, 'hosted');
    const serve = await startServe(root);
    try {
      const small = await runCli(['fetch', 'url', http.url('/small.bin'), '--root', root, '--json']);
      expect(small.code, small.stderr).toBe(0);
      const large = await runCli(['fetch', 'url', http.url('/large.bin'), '--root', root]);
      expect(large.code).toBe(1);
      expect(large.stderr).toMatch(/^ERR_IO: /m);
      fillUp(mnt);
      expect(free(mnt)).toBeLessThan(64 << 10);
      // gc reaches the database through serve, whose LevelDB must write gc's deletes on the full disk.
      const gc = await runCli(['gc', '--root', root, '--json']);
      expect(gc.stderr).not.toMatch(/internal error/);
      expect(gc.code, gc.stderr).toBe(0);
      expect(free(mnt)).toBeGreaterThan(8 << 20);
      const v = await runCli(['verify', '--all', '--root', root, '--json']);
      expect(JSON.parse(v.stdout)).toMatchObject({ checked: 1, damaged: [] });
    } finally {
      await serve.stop();
    }
  }, 120_000);
});
