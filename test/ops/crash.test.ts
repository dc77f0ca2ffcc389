/**
 * Crash safety: fetches and uploads SIGKILLed at random points, many times,
 * sometimes while another fetch runs as a guest of the killed one (so the
 * guest has to take over the database). Afterwards `verify --all` must find
 * no path info pointing at missing or damaged data, every fetch must
 * succeed again, and gc must leave a store that still verifies. The kill
 * delays come from a seeded PRNG, so a failure can be replayed.
 */

import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNar, type NarTree } from '../../src/nix/nar/encoder.js';
import { formatNarInfoNixOrder } from '../../src/nix/narinfo.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { formatStorePath, type StorePath, storePathHashPart } from '../../src/nix/store-path.js';
import { tarArchive, tarMember } from '../helpers/archives.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { bytes, cleanTempDirs, tempDir } from '../helpers/ops-store.js';
import { type Running, startCli, startServe } from '../helpers/processes.js';

const ITERATIONS = 30;
let http: TestServer;

function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** A tarball of `files` random files (shared prefix with the others, so chunks dedup across them). */
function tarball(seed: number, files: number): Buffer {
  const members = [tarMember({ name: 'pkg/', type: '5' })];
  for (let i = 0; i < files; i++) {
    members.push(
      tarMember({ name: `pkg/f${i}.bin`, content: bytes(i < 4 ? i + 1 : seed * 100 + i, 60_000) }),
    );
  }
  return gzipSync(tarArchive(members), { level: 1 });
}

beforeAll(async () => {
  http = await startServer();
  for (let i = 0; i < ITERATIONS; i++) {
    http.route(`/t${i}.tar.gz`, { body: tarball(i + 1, 25), chunkSize: 64 * 1024, slowMs: 5 });
  }
});
afterAll(async () => {
  await http.close();
  cleanTempDirs();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function verifyClean(root: string): Promise<number> {
  const v = await runCli(['verify', '--all', '--root', root, '--json']);
  const report = JSON.parse(v.stdout) as { checked: number; damaged: unknown[] };
  expect(report.damaged, v.stdout).toEqual([]);
  expect(v.code, v.stderr).toBe(0);
  return report.checked;
}

function killLater(r: Running, ms: number): Promise<void> {
  return sleep(ms).then(() => r.stop('SIGKILL'));
}

describe.skipIf(!cliBuilt())('crash safety', () => {
  it(`${ITERATIONS} fetches SIGKILLed at random points leave no damaged path; fetching again succeeds`, async () => {
    const root = tempDir();
    const random = rng(0x5eed);
    let completed = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const victim = startCli(['fetch', 'tarball', http.url(`/t${i}.tar.gz`), '--root', root, '--quiet']);
      // Every third round a second fetch runs as the victim's guest, and has to take over.
      const guest =
        i % 3 === 0
          ? startCli([
              'fetch',
              'tarball',
              http.url(`/t${(i + 1) % ITERATIONS}.tar.gz`),
              '--root',
              root,
              '--quiet',
            ])
          : undefined;
      await killLater(victim, Math.floor(random() * 900));
      if ((await victim.exited).code === 0) completed++;
      if (guest !== undefined) {
        const g = await guest.exited;
        expect(g.code, g.stderr).toBe(0);
      }
    }
    // Some kills landed before the fetch finished (else this tested nothing).
    expect(completed).toBeLessThan(ITERATIONS);
    const checked = await verifyClean(root);
    expect(checked).toBeGreaterThanOrEqual(completed);
    for (let i = 0; i < ITERATIONS; i += 3) {
      const again = await runCli(['fetch', 'tarball', http.url(`/t${i}.tar.gz`), '--root', root]);
      expect(again.code, again.stderr).toBe(0);
    }
    const gc = await runCli(['gc', '--root', root, '--json']);
    expect(gc.code, gc.stderr).toBe(0);
    expect(await verifyClean(root)).toBeGreaterThanOrEqual(ITERATIONS / 3);
  }, 600_000);

  it('serve SIGKILLed during uploads leaves no damaged path; the upload succeeds afterwards', async () => {
    const root = tempDir();
    const tokenFile = join(root, '..', 'token');
    writeFileSync(tokenFile, 'crash-test-token\n', { mode: 0o600 });
    const random = rng(0xc0ffee);
    const upload = async (url: string, i: number) => {
      const tree: NarTree = {
        type: 'directory',
        entries: {
          a: { type: 'regular', contents: bytes(1000 + i, 300_000) },
          b: { type: 'regular', contents: bytes(1, 200_000) },
        },
      };
      const nar = encodeNar(tree);
      const sp: StorePath = { digest: sha256(`crash-${i}`).slice(0, 20), name: `up-${i}` };
      const narUrl = `nar/${encodeNix32(sha256(nar))}.nar`;
      const text = formatNarInfoNixOrder({
        storePath: formatStorePath(sp),
        url: narUrl,
        compression: 'none',
        fileHash: { algo: 'sha256', digest: sha256(nar) },
        fileSize: nar.length,
        narHash: { algo: 'sha256', digest: sha256(nar) },
        narSize: nar.length,
        references: [],
        sigs: [],
      });
      expect(await put(`${url}/${narUrl}`, nar)).toBe(200);
      expect(await put(`${url}/${storePathHashPart(sp)}.narinfo`, Buffer.from(text))).toBe(200);
    };
    for (let i = 0; i < 10; i++) {
      const serve = await startServe(root, ['--upload-token-file', tokenFile]);
      const uploading = upload(serve.url, i).catch(() => undefined);
      await killLater(serve, Math.floor(random() * 400));
      await uploading;
    }
    await verifyClean(root);
    const serve = await startServe(root, ['--upload-token-file', tokenFile]);
    try {
      await upload(serve.url, 0);
    } finally {
      await serve.stop();
    }
    expect(await verifyClean(root)).toBeGreaterThanOrEqual(1);
  }, 300_000);
});

/** PUT with the upload token, the body sent in pieces so a kill can land mid-body. */
function put(url: string, body: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'PUT',
      headers: { authorization: 'Bearer crash-test-token', 'content-length': String(body.length) },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    void (async () => {
      for (let at = 0; at < body.length; at += 64 * 1024) {
        req.write(body.subarray(at, at + 64 * 1024));
        await sleep(3);
      }
      req.end();
    })();
  });
}
