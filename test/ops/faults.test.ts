/**
 * The fault test: 8 `fetch tarball` processes, `serve`, and two overlapping
 * gcs (a plain one, then a second later one with `--max-size … --keep-recent
 * 0`) on one root, for several rounds. Every fetch must give the NAR hash
 * `nix-prefetch-url --unpack` gives for the same archive, every gc must end
 * well (never an internal error), every NAR `serve` hands out meanwhile must
 * hash to its narinfo's NarHash, and `verify --all` must be clean after each
 * round. Rounds overlap in their archives, so some fetches are cache hits
 * and some fetch again what the previous round's gc evicted.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { tarArchive, tarMember } from '../helpers/archives.js';
import { type CliResult, cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { type NixBin, nixAvailable, runNixOk } from '../helpers/nix.js';
import { bytes, cleanTempDirs, tempDir } from '../helpers/ops-store.js';
import { startServe } from '../helpers/processes.js';

const ARCHIVES = 16;
const ROUNDS = 3;
const PER_ROUND = 8;
const SHARED = bytes(7, 512 << 10);
let http: TestServer;
let work: string;
const expected: string[] = [];

/** Archive i: a 512 KiB file every archive shares, and 768 KiB of its own in three files. */
function archive(i: number): Buffer {
  const members = [tarMember({ name: `pkg-${i}/`, type: '5' })];
  members.push(tarMember({ name: `pkg-${i}/shared.bin`, content: SHARED }));
  for (let f = 0; f < 3; f++) {
    members.push(tarMember({ name: `pkg-${i}/own-${f}.bin`, content: bytes(1000 + i * 10 + f, 256 << 10) }));
  }
  return gzipSync(tarArchive(members), { level: 1 });
}

beforeAll(async () => {
  if (!nixAvailable() || !cliBuilt()) return;
  work = mkdtempSync(join(tmpdir(), 'fc-faults-'));
  http = await startServer();
  const hashes = Array.from({ length: ARCHIVES }, async (_, i) => {
    const body = archive(i);
    const file = join(work, `a${i}.tar.gz`);
    writeFileSync(file, body);
    http.route(`/a${i}.tar.gz`, { body, chunkSize: 256 << 10, slowMs: 2 });
    const store = mkdtempSync(join(work, 'nix-store-'));
    const nix32 = await runNixOk(['--store', store, '--unpack', `file://${file}`], {
      bin: 'nix-prefetch-url' as NixBin,
    });
    return runNixOk(['hash', 'to-sri', '--type', 'sha256', nix32]);
  });
  expected.push(...(await Promise.all(hashes)));
}, 60_000);

afterAll(async () => {
  await http?.close();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
  cleanTempDirs();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads narinfos and NARs from `serve` until `stop` says so; every NAR served must hash to its NarHash. */
async function readWhileRunning(url: string, paths: () => string[], stop: () => boolean): Promise<number> {
  let served = 0;
  while (!stop()) {
    for (const p of paths()) {
      const hash = p.replace(/^\/nix\/store\//, '').slice(0, 32);
      const info = await fetch(`${url}/${hash}.narinfo`);
      if (info.status === 404) continue;
      expect(info.status).toBe(200);
      const text = await info.text();
      const narUrl = /^URL: (.*)$/m.exec(text)![1]!;
      const narHash = /^NarHash: sha256:(.*)$/m.exec(text)![1]!;
      const nar = await fetch(`${url}/${narUrl}`);
      if (nar.status === 404) continue; // evicted between the two requests
      expect(nar.status).toBe(200);
      expect(encodeNix32(sha256(new Uint8Array(await nar.arrayBuffer())))).toBe(narHash);
      served++;
    }
    await sleep(50);
  }
  return served;
}

function expectGcOk(r: CliResult): void {
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.code, r.stderr).toBe(0);
}

describe.skipIf(!cliBuilt() || !nixAvailable())(
  'faults: fetches, serve and overlapping gcs on one root (needs the built CLI and Nix)',
  () => {
    it(`${ROUNDS} rounds: every fetch gives Nix's hash, every gc ends well, verify --all is clean`, async () => {
      const root = tempDir();
      const serve = await startServe(root);
      const known: string[] = [];
      let served = 0;
      try {
        for (let round = 0; round < ROUNDS; round++) {
          const picks = Array.from({ length: PER_ROUND }, (_, i) => (round * 5 + i) % ARCHIVES);
          const fetches = picks.map((a) =>
            runCli(['fetch', 'tarball', http.url(`/a${a}.tar.gz`), '--root', root, '--json']),
          );
          let done = false;
          const reader = readWhileRunning(
            serve.url,
            () => [...known],
            () => done,
          );
          await sleep(300);
          const plain = runCli(['gc', '--root', root, '--json']);
          await sleep(1000);
          const evicting = runCli(['gc', '--root', root, '--max-size', '3M', '--keep-recent', '0', '--json']);
          const results = await Promise.all(fetches);
          const gcs = await Promise.all([plain, evicting]);
          done = true;
          served += await reader;
          results.forEach((r, i) => {
            expect(r.code, r.stderr).toBe(0);
            const out = JSON.parse(r.stdout) as { narHash: string; path: string };
            expect(out.narHash, `archive ${picks[i]}`).toBe(expected[picks[i]!]);
            if (!known.includes(out.path)) known.push(out.path);
          });
          for (const g of gcs) expectGcOk(g);
          const v = await runCli(['verify', '--all', '--root', root, '--json']);
          expect(JSON.parse(v.stdout), `round ${round}`).toMatchObject({ damaged: [] });
          expect(v.code, v.stderr).toBe(0);
        }
        // serve handed out NARs of earlier rounds while the gcs ran (each checked against its NarHash).
        expect(served).toBeGreaterThan(0);
      } finally {
        await serve.stop();
      }
    }, 120_000);
  },
);
