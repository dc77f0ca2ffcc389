/**
 * Several machines on one shared store, on one host: two `fetch-cache serve`
 * processes with near caches of their own (`--cache-root`), standing for two
 * machines, over one `postgres://` store whose chunk bytes are pack objects
 * under one S3 prefix, and CLI runs (fetch, gc, verify, path-info) as a third
 * machine with a third near-cache root. Real processes through the built CLI,
 * the real PostgreSQL and radosgw (FETCH_CACHE_TEST_POSTGRES,
 * FETCH_CACHE_TEST_S3; skipped without them, except in CI), and real Nix as
 * the reference (skipped without Nix):
 *
 *   - a tarball fetched on the third machine is substituted by `nix copy
 *     --from` the second server, with the NAR hash Nix computes;
 *   - `nix copy --to` whose PUT nar reaches one server and PUT narinfo the
 *     other lands once;
 *   - gc from the third machine while both serve and fetches run loses
 *     nothing: every fetch gives Nix's hash, `verify --all` is clean;
 *   - a server SIGKILLed mid-upload and a fetch SIGKILLed mid-pack leave
 *     nothing visible and nothing that makes the next gc wait;
 *   - a server SIGKILLed while a fetch on its machine is a guest of its near
 *     cache: the fetch takes the near cache over and ends well.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNar, type NarTree } from '../../src/nix/nar/encoder.js';
import { formatNarInfoNixOrder } from '../../src/nix/narinfo.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { formatStorePath, type StorePath, storePathHashPart } from '../../src/nix/store-path.js';
import { tarArchive, tarMember } from '../helpers/archives.js';
import { startBalancer } from '../helpers/balancer.js';
import { type CliResult, cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { nixAvailable, runNix, runNixOk } from '../helpers/nix.js';
import { bytes } from '../helpers/ops-store.js';
import { TEST_POSTGRES } from '../helpers/postgres.js';
import { postgresStore, type TestPostgresStore } from '../helpers/postgres-store.js';
import { type Running, startCli, startServing } from '../helpers/processes.js';
import { s3Client } from '../helpers/s3-stores.js';
import { s3TestServer } from '../storage/s3-suite.js';

const TEST_S3 = s3TestServer('FETCH_CACHE_TEST_S3');
const TOKEN = 'multi-machine-token-0123456789';
const HAVE_SERVERS = TEST_POSTGRES !== undefined && TEST_S3 !== undefined;
const NIX_ENV = {
  NIX_CONFIG: 'experimental-features = nix-command flakes\nsubstituters =\nrequire-sigs = false',
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it.runIf(process.env.CI === 'true')('has PostgreSQL and S3 in CI (started by .ci/run)', () => {
  expect(HAVE_SERVERS, 'FETCH_CACHE_TEST_POSTGRES and FETCH_CACHE_TEST_S3 must be set in CI').toBe(true);
});

/** A gzipped tarball of `files` files under `pkg/`, the first ones shared with every other tarball (dedup). */
function tarball(seed: number, files: number, size = 60_000): Buffer {
  const members = [tarMember({ name: 'pkg/', type: '5' })];
  for (let i = 0; i < files; i++) {
    members.push(tarMember({ name: `pkg/f${i}.bin`, content: bytes(i < 3 ? i + 1 : seed * 100 + i, size) }));
  }
  members.push(tarMember({ name: 'pkg/bin/run', content: `#!/bin/sh\necho ${seed}\n`, mode: 0o755 }));
  return gzipSync(tarArchive(members), { level: 1 });
}

/** `nix-prefetch-url --unpack URL` as SRI: Nix's NAR hash of the unpacked tarball. */
async function nixTarballHash(url: string): Promise<string> {
  const store = mkdtempSync(join(tmpdir(), 'fc-mm-prefetch-'));
  try {
    // runNix's type lists the nix binaries other tests use; it spawns whichever name it is given.
    const nix32 = await runNixOk(['--store', store, '--unpack', url], { bin: 'nix-prefetch-url' as 'nix' });
    return await runNixOk(['hash', 'to-sri', '--type', 'sha256', nix32]);
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

/** PUT with the upload token; the body goes in pieces, and `midway` runs (awaited) once half of it is sent. */
function put(url: string, body: Uint8Array, midway?: () => Promise<void>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-length': String(body.length) },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    void (async () => {
      const piece = 64 * 1024;
      for (let at = 0; at < body.length; at += piece) {
        if (midway !== undefined && at >= body.length / 2 && at - piece < body.length / 2) await midway();
        if (req.destroyed) return;
        req.write(body.subarray(at, at + piece));
        await sleep(1);
      }
      req.end();
    })().catch(reject);
  });
}

/** A NAR of two files and its narinfo for store path `name` (uncompressed, unsigned), as `nix copy --to` sends them. */
function upload(
  name: string,
  seed: number,
): { nar: Buffer; narUrl: string; narinfo: string; path: string; hashPart: string } {
  const tree: NarTree = {
    type: 'directory',
    entries: {
      a: { type: 'regular', contents: bytes(seed, 4_000_000) },
      b: { type: 'regular', contents: bytes(seed + 1, 2_000_000) },
    },
  };
  const nar = Buffer.from(encodeNar(tree));
  const sp: StorePath = { digest: sha256(`multi-machine-${name}`).slice(0, 20), name };
  const narUrl = `nar/${encodeNix32(sha256(nar))}.nar`;
  const narinfo = formatNarInfoNixOrder({
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
  return { nar, narUrl, narinfo, path: formatStorePath(sp), hashPart: storePathHashPart(sp) };
}

describe.skipIf(!HAVE_SERVERS || !cliBuilt())(
  'two machines serving one postgres:// + s3:// store, a third fetching',
  () => {
    let s: TestPostgresStore;
    let tmp: string;
    let http: TestServer;
    let a: Running & { url: string };
    let b: Running & { url: string };
    let storeArgs: string[];
    let tokenFile: string;
    const near = (name: string) => join(tmp, `near-${name}`);

    /** The CLI on the third machine (its own near cache), or with `root` another's. */
    const cli = (args: readonly string[], root = near('c')): Promise<CliResult> =>
      runCli([...storeArgs, '--cache-root', root, ...args], { env: s.env });

    const serve = (root: string) =>
      startServing([...storeArgs, '--cache-root', root, '--upload-token-file', tokenFile], s.env);

    async function fetchTarball(url: string): Promise<{ path: string; narHash: string }> {
      const r = await cli(['--json', 'fetch', 'tarball', url]);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { path: string; narHash: string };
    }

    async function allPaths(): Promise<string[]> {
      const r = await cli(['path-info', '--all']);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.split('\n').filter(Boolean).sort();
    }

    async function verifyClean(): Promise<number> {
      // No near cache: every byte is read from the bucket.
      const v = await runCli([...storeArgs, '--json', 'verify', '--all'], { env: s.env });
      const report = JSON.parse(v.stdout) as { checked: number; damaged: unknown[] };
      expect(report.damaged, v.stdout).toEqual([]);
      expect(v.code, v.stderr).toBe(0);
      return report.checked;
    }

    beforeAll(async () => {
      s = await postgresStore({ s3: TEST_S3! });
      tmp = mkdtempSync(join(tmpdir(), 'fc-multi-machine-'));
      tokenFile = join(tmp, 'token');
      writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
      storeArgs = ['--store', s.store, '--blob-store', s.blobStore];
      http = await startServer();
      [a, b] = await Promise.all([serve(near('a')), serve(near('b'))]);
    }, 120_000);
    afterAll(async () => {
      await a?.stop();
      await b?.stop();
      await http?.close();
      await s?.remove();
      if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
    }, 120_000);

    it.skipIf(!nixAvailable())(
      'a tarball fetched on the third machine is substituted by nix copy --from the second server, with Nix’s hash',
      async () => {
        http.route('/a.tar.gz', { body: tarball(1, 12) });
        const url = http.url('/a.tar.gz');
        const fetched = await fetchTarball(url);
        expect(fetched.narHash).toBe(await nixTarballHash(url));

        const store = join(tmp, 'nix-a');
        const copied = await runNix(['copy', '--from', b.url, '--to', store, fetched.path], { env: NIX_ENV });
        expect(copied.code, copied.stderr).toBe(0);
        const hash = await runNixOk(['hash', 'path', join(store, fetched.path)], { env: NIX_ENV });
        expect(hash).toBe(fetched.narHash);
      },
      300_000,
    );

    it.skipIf(!nixAvailable())(
      'nix copy --to with PUT nar on one server and PUT narinfo on the other lands once',
      async () => {
        const balancer = await startBalancer(a.url, b.url);
        try {
          const source = join(tmp, 'source');
          rmSync(source, { recursive: true, force: true });
          mkdirSync(join(source, 'sub'), { recursive: true });
          writeFileSync(join(source, 'greeting'), 'hello from machine one\n');
          writeFileSync(join(source, 'sub', 'data.bin'), bytes(77, 1_500_000));
          const nixStore = join(tmp, 'nix-b');
          const netrc = join(tmp, 'netrc');
          writeFileSync(netrc, `machine 127.0.0.1 login nix password ${TOKEN}\n`);
          const env = { NIX_CONFIG: `${NIX_ENV.NIX_CONFIG}\nnetrc-file = ${netrc}` };
          const path = await runNixOk(
            ['store', 'add-path', '--store', nixStore, '--name', 'split-upload', source],
            { env },
          );
          const before = await allPaths();

          const copied = await runNix(['copy', '--from', nixStore, '--to', balancer.url, path], { env });
          expect(copied.code, copied.stderr).toBe(0);
          expect(balancer.seen).toContain('PUT nar -> A');
          expect(balancer.seen).toContain('PUT narinfo -> B');
          expect(await allPaths()).toEqual([...before, path].sort());

          // Once: a second copy finds it there and uploads nothing.
          const puts = balancer.seen.filter((x) => x.startsWith('PUT')).length;
          const again = await runNix(['copy', '--from', nixStore, '--to', balancer.url, path], { env });
          expect(again.code, again.stderr).toBe(0);
          expect(balancer.seen.filter((x) => x.startsWith('PUT')).length).toBe(puts);

          const info = await cli(['--json', 'path-info', path]);
          expect(info.code, info.stderr).toBe(0);
          const hash = await runNixOk(['hash', 'path', join(nixStore, path)], { env });
          expect((JSON.parse(info.stdout) as { narHash: string }[]).map((i) => i.narHash)).toEqual([hash]);
          const verify = await cli(['verify', path]);
          expect(verify.stdout).toMatch(/, 0 damaged\n$/);
        } finally {
          await balancer.close();
        }
      },
      300_000,
    );

    it.skipIf(!nixAvailable())(
      'gc from the third machine while both servers serve and fetches run loses nothing',
      async () => {
        const N = 6;
        for (let i = 0; i < N; i++) {
          http.route(`/c${i}.tar.gz`, { body: tarball(10 + i, 20), chunkSize: 64 * 1024, slowMs: 20 });
        }
        // Something to serve while it all runs.
        http.route('/served.tar.gz', { body: tarball(9, 8) });
        const served = await fetchTarball(http.url('/served.tar.gz'));
        const hashPart = served.path.slice('/nix/store/'.length, '/nix/store/'.length + 32);

        let stop = false;
        const reads: number[] = [];
        const reader = (async () => {
          for (let n = 0; !stop; n++) {
            const server = n % 2 === 0 ? a : b;
            const narinfo = await (await fetch(`${server.url}/${hashPart}.narinfo`)).text();
            const narUrl = /^URL: (.+)$/m.exec(narinfo)?.[1];
            expect(narUrl, narinfo).toBeDefined();
            const res = await fetch(`${server.url}/${narUrl}`);
            expect(res.status).toBe(200);
            const body = Buffer.from(await res.arrayBuffer());
            expect(/^Compression: none$/m.test(narinfo)).toBe(true);
            expect(`sha256-${Buffer.from(sha256(body)).toString('base64')}`).toBe(served.narHash);
            reads.push(body.length);
          }
        })();

        const fetches = Array.from({ length: N }, (_, i) =>
          cli(['--json', 'fetch', 'tarball', http.url(`/c${i}.tar.gz`)], near(i % 2 === 0 ? 'c' : 'd')),
        );
        const gcs: CliResult[] = [];
        const gcLoop = (async () => {
          // gc runs until the fetches are done (at least twice), each from a process of its own.
          let done = false;
          void Promise.all(fetches).then(() => {
            done = true;
          });
          while (!done || gcs.length < 2) gcs.push(await cli(['--json', 'gc'], near('e')));
        })();
        const results = await Promise.all(fetches);
        await gcLoop;
        stop = true;
        await reader;

        for (const g of gcs) expect(g.code, g.stderr).toBe(0);
        expect(reads.length).toBeGreaterThan(0);
        const paths: string[] = [];
        for (let i = 0; i < N; i++) {
          const r = results[i]!;
          expect(r.code, r.stderr).toBe(0);
          const got = JSON.parse(r.stdout) as { path: string; narHash: string };
          expect(got.narHash).toBe(await nixTarballHash(http.url(`/c${i}.tar.gz`)));
          paths.push(got.path);
        }
        expect(await verifyClean()).toBeGreaterThanOrEqual(N + 1);

        // And Nix gets them from the servers, as fetched.
        const store = join(tmp, 'nix-c');
        const copied = await runNix(['copy', '--from', a.url, '--to', store, ...paths], { env: NIX_ENV });
        expect(copied.code, copied.stderr).toBe(0);
        for (let i = 0; i < N; i++) {
          const hash = await runNixOk(['hash', 'path', join(store, paths[i]!)], { env: NIX_ENV });
          expect(hash).toBe(JSON.parse(results[i]!.stdout).narHash);
        }
      },
      600_000,
    );

    it('SIGKILL of a server mid-upload and of a fetch mid-pack leaves nothing visible and does not hold up gc', async () => {
      const before = await allPaths();
      let left: string[] = []; // the pack objects the killed fetch left
      const client = s3Client(TEST_S3!);
      const bucket = new URL(s.blobStore).hostname;
      const prefix = `${decodeURIComponent(new URL(s.blobStore).pathname).replace(/^\/+|\/+$/g, '')}/packs/`;
      const packs = async () => {
        const keys = new Set<string>();
        for await (const o of client.listObjects(bucket, prefix)) keys.add(o.key);
        return keys;
      };
      try {
        // A server killed halfway through the body of a PUT nar.
        const first = upload('killed-mid-nar', 500);
        const d = await serve(near('d1'));
        const midNar = put(`${d.url}/${first.narUrl}`, first.nar, () => d.stop('SIGKILL')).catch(() => 0);
        expect(await midNar).not.toBe(200);

        // A server killed after the NAR was taken, before its narinfo (a pending upload left behind).
        const second = upload('killed-before-narinfo', 600);
        const e = await serve(near('d2'));
        expect(await put(`${e.url}/${second.narUrl}`, second.nar)).toBe(200);
        await e.stop('SIGKILL');

        // A fetch killed with part of its tarball read: its source stalls halfway, so the chunks read so
        // far wait in a pack (uploaded once the writer waits on the source) that no row names yet.
        const big = tarball(99, 100, 100_000);
        const half = Math.floor(big.length / 2);
        let sent = false;
        const stall = createServer((_req, res) => {
          res.writeHead(200, { 'content-length': String(big.length), 'content-type': 'application/gzip' });
          res.write(big.subarray(0, half), () => {
            sent = true;
          });
        });
        await new Promise<void>((resolve) => stall.listen(0, '127.0.0.1', resolve));
        const stallUrl = `http://127.0.0.1:${(stall.address() as { port: number }).port}/big.tar.gz`;
        try {
          const packsBefore = await packs();
          const victim = startCli(
            [...storeArgs, '--cache-root', near('c'), 'fetch', 'tarball', stallUrl],
            s.env,
          );
          // Until the half is sent and a new pack object is there (checked below; at most a minute).
          for (let i = 0; i < 600 && !(sent && [...(await packs())].some((k) => !packsBefore.has(k))); i++) {
            await sleep(100);
          }
          // It was mid-pack: chunks it read are in pack objects already (`left`), its path info not written.
          expect(sent).toBe(true);
          left = [...(await packs())].filter((k) => !packsBefore.has(k));
          expect(left.length).toBeGreaterThan(0);
          await victim.stop('SIGKILL');
        } finally {
          await new Promise<void>((resolve) => {
            stall.closeAllConnections();
            stall.close(() => resolve());
          });
        }

        // Nothing visible: no path info, no narinfo on either server, the fetch not recorded.
        expect(await allPaths()).toEqual(before);
        for (const u of [first, second]) {
          const info = await cli(['path-info', u.path]);
          expect(info.code).toBe(1);
          for (const server of [a, b])
            expect((await fetch(`${server.url}/${u.hashPart}.narinfo`)).status).toBe(404);
        }

        // Nothing that holds up gc: it does not wait for anyone, and ends well.
        const gc = await cli(['--json', 'gc']);
        expect(gc.code, gc.stderr).toBe(0);
        expect(gc.stderr).not.toMatch(/waiting/);
        expect(await verifyClean()).toBe(before.length);
        // What the killed fetch left in the bucket no record names now: verify --remote finds it (to repair).
        const remote = await runCli([...storeArgs, '--json', 'verify', '--remote'], { env: s.env });
        expect(remote.code, remote.stderr).toBe(0);
        const strays = (JSON.parse(remote.stdout) as { strays: { keys: string[] } }).strays.keys;
        expect(strays).toEqual(expect.arrayContaining(left));

        // The upload goes through on the servers still running, and both see it.
        expect(await put(`${a.url}/${second.narUrl}`, second.nar)).toBe(200);
        expect(await put(`${b.url}/${second.hashPart}.narinfo`, Buffer.from(second.narinfo))).toBe(200);
        for (const server of [a, b])
          expect((await fetch(`${server.url}/${second.hashPart}.narinfo`)).status).toBe(200);
        expect(await allPaths()).toEqual([...before, second.path].sort());
      } finally {
        await client.close();
      }
    }, 600_000);

    it('a serve SIGKILLed while a fetch on its machine uses its near cache: the fetch ends well, a new serve takes the near cache over', async () => {
      http.route('/e.tar.gz', { body: tarball(20, 30), chunkSize: 64 * 1024, slowMs: 20 });
      const root = near('f');
      const first = await serve(root);
      // The fetch is a guest of the serve's near cache database (the serve opened it first).
      const fetching = cli(['--json', 'fetch', 'tarball', http.url('/e.tar.gz')], root);
      while (http.requests('/e.tar.gz') === 0) await sleep(50);
      await first.stop('SIGKILL');
      const r = await fetching;
      expect(r.code, r.stderr).toBe(0);
      const got = JSON.parse(r.stdout) as { path: string; narHash: string };

      const second = await serve(root);
      try {
        const hashPart = got.path.slice('/nix/store/'.length, '/nix/store/'.length + 32);
        for (let n = 0; n < 2; n++) {
          const narinfo = await (await fetch(`${second.url}/${hashPart}.narinfo`)).text();
          const res = await fetch(`${second.url}/${/^URL: (.+)$/m.exec(narinfo)?.[1]}`);
          expect(res.status).toBe(200);
          const body = Buffer.from(await res.arrayBuffer());
          expect(`sha256-${Buffer.from(sha256(body)).toString('base64')}`).toBe(got.narHash);
        }
        // A third process on this machine shares the near cache with the new serve.
        const v = await cli(['verify', got.path], root);
        expect(v.stdout, v.stderr).toMatch(/, 0 damaged\n$/);
      } finally {
        await second.stop();
      }
    }, 300_000);
  },
);
