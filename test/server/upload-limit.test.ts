/**
 * Uploads are bounded (issue 17 item 10): a NAR file past `maxUploadBytes` as sent (by its
 * Content-Length before anything is read, or counted when sent chunked) or an xz that expands past it
 * is 413; nothing becomes pending or visible, and what the aborted ingest wrote is unreferenced, so gc
 * deletes it. `fetch-cache serve --max-upload-size` sets the limit (a child process on 127.0.0.1).
 */

import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNar } from '../../src/nix/nar/encoder.js';
import { formatNarInfoNixOrder } from '../../src/nix/narinfo.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { formatStorePath, type StorePath, storePathHashPart } from '../../src/nix/store-path.js';
import { gc } from '../../src/ops/gc.js';
import { storeStats } from '../../src/ops/stats.js';
import { createServices } from '../../src/server/services.js';
import { runCli } from '../helpers/cli.js';
import { bytes } from '../helpers/ops-store.js';
import { startServe } from '../helpers/processes.js';
import { type Harness, rawRequest, startHarness, TOKEN } from './harness.js';

const AUTH = { Authorization: `Bearer ${TOKEN}` };
const MiB = 1024 * 1024;

/** A NAR of one file of `size` zero bytes, xz-compressed by the real `xz` (a few KiB). */
function xzBomb(size: number): Buffer {
  const nar = encodeNar({ type: 'regular', contents: new Uint8Array(size) });
  const r = spawnSync('xz', ['-1', '-T1', '-c'], { input: nar, maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`xz failed: ${r.stderr}`);
  return r.stdout;
}

const narPath = (file: Uint8Array, ext: string) => `/nar/${encodeNix32(sha256(file))}.nar${ext}`;

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('upload limits', () => {
  it('the default is 4 GiB', async () => {
    h = await startHarness();
    expect(h.services.config.maxUploadBytes).toBe(4 * 1024 * MiB);
    expect(() => createServices(h!.cache, { maxUploadBytes: 0 })).toThrow(TypeError);
  });

  it('an xz that expands past the limit is 413; nothing is pending or stored, and gc deletes what it wrote', async () => {
    h = await startHarness({ maxUploadBytes: 16 * MiB });
    const bomb = xzBomb(64 * MiB);
    expect(bomb.length).toBeLessThan(64 * 1024);
    const r = await rawRequest(h.port, 'PUT', narPath(bomb, '.xz'), AUTH, bomb);
    expect(r.status).toBe(413);
    expect(r.body.toString()).toContain(`the uploaded NAR is over the upload limit of ${16 * MiB} bytes`);
    expect((await rawRequest(h.port, 'HEAD', narPath(bomb, '.xz'))).status).toBe(404);
    expect(await h.services.uploads.count()).toBe(0);
    const nar = encodeNar({ type: 'regular', contents: new Uint8Array(64 * MiB) });
    const sp: StorePath = { digest: sha256('bomb').slice(0, 20), name: 'bomb' };
    const narInfo = formatNarInfoNixOrder({
      storePath: formatStorePath(sp),
      url: narPath(bomb, '.xz').slice(1),
      compression: 'xz',
      narHash: { algo: 'sha256', digest: sha256(nar) },
      narSize: nar.length,
      references: [],
      sigs: [],
    });
    const ni = await rawRequest(
      h.port,
      'PUT',
      `/${storePathHashPart(sp)}.narinfo`,
      AUTH,
      Buffer.from(narInfo),
    );
    expect(ni.status).toBe(400);
    expect((await storeStats(h.cache)).paths).toBe(0);
    // The chunks ingested before the limit was hit belong to nothing: garbage for gc.
    expect((await storeStats(h.cache)).unreachable.chunks).toBeGreaterThan(0);
    expect((await gc(h.cache)).deleted.chunks).toBeGreaterThan(0);
    expect((await storeStats(h.cache)).unreachable).toMatchObject({ chunks: 0, chunkLists: 0 });
  });

  it('a file past the limit is 413 by its Content-Length, or counted when sent chunked; one within it is accepted', async () => {
    h = await startHarness({ maxUploadBytes: 256 * 1024 });
    const big = encodeNar({ type: 'regular', contents: bytes(1, 300 * 1024) });
    const declared = await rawRequest(h.port, 'PUT', narPath(big, ''), AUTH, big);
    expect(declared.status).toBe(413);
    expect(declared.body.toString()).toContain('the uploaded file is over the upload limit of 262144 bytes');
    async function* chunked() {
      for (let i = 0; i < big.length; i += 16 * 1024) yield big.subarray(i, i + 16 * 1024);
    }
    const streamed = await rawRequest(h.port, 'PUT', narPath(big, ''), AUTH, chunked());
    expect(streamed.status).toBe(413);
    expect(streamed.body.toString()).toContain('the uploaded file is over the upload limit');
    expect(await h.services.uploads.count()).toBe(0);
    const small = encodeNar({ type: 'regular', contents: bytes(2, 200 * 1024) });
    expect((await rawRequest(h.port, 'PUT', narPath(small, ''), AUTH, small)).status).toBe(200);
  });

  it('fetch-cache serve --max-upload-size sets the limit; a bad value is a usage error', async () => {
    const work = await mkdtemp(join(tmpdir(), 'fc-upload-limit-'));
    try {
      await writeFile(join(work, 'token'), TOKEN, { mode: 0o600 });
      const bad = await runCli(['--root', join(work, 'root'), 'serve', '--max-upload-size', 'lots']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--max-upload-size');
      const serve = await startServe(join(work, 'root'), [
        '--upload-token-file',
        join(work, 'token'),
        '--max-upload-size',
        '1M',
      ]);
      try {
        const port = Number(new URL(serve.url).port);
        const bomb = xzBomb(4 * MiB);
        const r = await rawRequest(port, 'PUT', narPath(bomb, '.xz'), AUTH, bomb);
        expect(r.status).toBe(413);
        expect(r.body.toString()).toContain(`over the upload limit of ${MiB} bytes`);
        const ok = xzBomb(MiB / 2);
        expect((await rawRequest(port, 'PUT', narPath(ok, '.xz'), AUTH, ok)).status).toBe(200);
      } finally {
        await serve.stop();
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
