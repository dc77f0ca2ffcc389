/**
 * A poisoned upload, end to end with real processes on one cache root (issue 17 item 1): `fetch-cache
 * serve` with an upload token, `fetch-cache fetch` and `verify` as CLI child processes, hand-crafted
 * PUTs with the token, and real Nix (`nix copy --to` with a netrc token, `nix copy --from`).
 *
 * - Other NAR bytes for a fetched path are refused (409) and change nothing: `fetch --hash` of the
 *   genuine hash still answers with the genuine path, serve serves it, verify finds nothing.
 * - Nix can still upload a path that claims a fetched source's store path *before* it is fetched (it is
 *   unknown then, and has no CA); the first `fetch --hash` finds it damaged, fetches again and replaces
 *   it, and Nix then substitutes the genuine content.
 * - A root poisoned before uploads were checked (a fetched path recorded without its CA): `verify`
 *   reports it, `verify --repair` removes it, `fetch --hash` stores the genuine path again.
 */

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { fetchSpec } from '../../src/fetchers/base.js';
import { toSRI } from '../../src/nix/hash.js';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNar } from '../../src/nix/nar/encoder.js';
import { formatNarInfoNixOrder, parseNarInfo } from '../../src/nix/narinfo.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { formatStorePath, parseStorePath, storePathHashPart } from '../../src/nix/store-path.js';
import { encodePathInfo } from '../../src/pathinfo/proto.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { importInputAddressed, nixAvailable, runNix } from '../helpers/nix.js';
import { type Running, startServe } from '../helpers/processes.js';
import { rawRequest } from './harness.js';

const TOKEN = 'poisoned-upload-test-token';
const AUTH = { Authorization: `Bearer ${TOKEN}` };
const fixture = (name: string) => readFile(new URL(`../../fixtures/archives/${name}`, import.meta.url));

let work: string;
let root: string;
let files: TestServer;
let serve: Running & { url: string };
let port: number;

beforeAll(async () => {
  if (!cliBuilt()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  work = await mkdtemp(join(tmpdir(), 'fc-poison-'));
  root = join(work, 'root');
  await writeFile(join(work, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  files = await startServer({
    '/pkg.tar.gz': { body: await fixture('pkg.tar.gz') },
    '/onefile.tar.gz': { body: await fixture('onefile.tar.gz') },
    '/multi.tar.gz': { body: await fixture('multi.tar.gz') },
  });
  serve = await startServe(root, ['--upload-token-file', join(work, 'token')]);
  port = Number(new URL(serve.url).port);
});
afterAll(async () => {
  await serve?.stop();
  await files?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

interface Fetched {
  path: string;
  narHash: string;
  ca?: string;
}

async function fetchTarball(url: string, hash?: string): Promise<{ out: Fetched; stderr: string }> {
  const r = await runCli([
    '--root',
    root,
    '--json',
    'fetch',
    'tarball',
    url,
    ...(hash === undefined ? [] : ['--hash', hash]),
  ]);
  expect(r.code, r.stderr).toBe(0);
  return { out: JSON.parse(r.stdout) as Fetched, stderr: r.stderr };
}

async function servedNarInfo(path: string) {
  const r = await rawRequest(port, 'GET', `/${storePathHashPart(parseStorePath(path))}.narinfo`);
  expect(r.status).toBe(200);
  return parseNarInfo(r.body.toString());
}

async function verifyAll(...extra: string[]) {
  const r = await runCli(['--root', root, '--json', 'verify', '--all', ...extra]);
  return {
    code: r.code,
    report: JSON.parse(r.stdout) as { damaged: { path: string; problems: string[] }[] },
  };
}

describe('a poisoned upload against fetch-cache serve', () => {
  it('other NAR bytes for a fetched path are refused; fetch --hash, serve and verify keep the genuine path', async () => {
    const url = files.url('/pkg.tar.gz');
    const { out: genuine } = await fetchTarball(url);
    const evil = encodeNar({
      type: 'directory',
      entries: { README: { type: 'regular', contents: new TextEncoder().encode('pwned\n') } },
    });
    const narUrl = `/nar/${encodeNix32(sha256(evil))}.nar`;
    expect((await rawRequest(port, 'PUT', narUrl, AUTH, evil)).status).toBe(200);
    const narInfo = formatNarInfoNixOrder({
      storePath: genuine.path,
      url: narUrl.slice(1),
      compression: 'none',
      narHash: { algo: 'sha256', digest: sha256(evil) },
      narSize: evil.length,
      references: [],
      sigs: [],
    });
    const refused = await rawRequest(
      port,
      'PUT',
      `/${storePathHashPart(parseStorePath(genuine.path))}.narinfo`,
      AUTH,
      Buffer.from(narInfo),
    );
    expect(refused.status).toBe(409);
    expect(refused.body.toString()).toContain('never changes its content');

    const again = await fetchTarball(url, genuine.narHash);
    expect(again.out).toMatchObject({ path: genuine.path, narHash: genuine.narHash, cached: true });
    expect(again.stderr).toBe('');
    const served = await servedNarInfo(genuine.path);
    expect(toSRI(served.narHash)).toBe(genuine.narHash);
    expect(served.ca).toBe(genuine.ca);
    expect(await verifyAll()).toMatchObject({ code: 0, report: { damaged: [] } });
  });

  it.skipIf(!nixAvailable())(
    'nix copy of a path claiming a source not yet fetched is replaced by the first fetch --hash',
    async () => {
      const url = files.url('/onefile.tar.gz');
      // The store path and hash the genuine tarball gives, computed aside (the served root has not seen it).
      const scratch = await openCache({ memory: true });
      const expected = (await fetchSpec(scratch, { type: 'tarball', url })).pathInfo;
      await scratch.close();
      const path = formatStorePath(expected.storePath);
      const hash = toSRI({ algo: 'sha256', digest: expected.narSha256 });

      const nixStore = join(work, 'nix-store');
      const evilDir = join(work, 'evil-tree');
      await mkdir(evilDir, { recursive: true });
      await writeFile(join(evilDir, 'payload'), 'not what the tarball holds\n');
      await importInputAddressed(nixStore, path, evilDir);
      const netrc = join(work, 'netrc');
      await writeFile(netrc, `machine 127.0.0.1 login nix password ${TOKEN}\n`);
      const conf = (extra: string) => ({
        NIX_CONFIG: `experimental-features = nix-command\nsubstituters =\n${extra}`,
      });
      const copied = await runNix(['copy', '--from', nixStore, '--to', serve.url, path], {
        env: conf(`netrc-file = ${netrc}`),
      });
      expect(copied.code, copied.stderr).toBe(0);
      expect((await servedNarInfo(path)).ca).toBeUndefined();

      const fetched = await fetchTarball(url, hash);
      expect(fetched.out).toMatchObject({ path, narHash: hash, cached: false });
      expect(fetched.stderr).toContain(`warning: the path info of ${path} is damaged`);
      const served = await servedNarInfo(path);
      expect(toSRI(served.narHash)).toBe(hash);
      expect(served.ca).toBe(`fixed:r:sha256:${encodeNix32(expected.narSha256)}`);
      // Real Nix substitutes the genuine content (a content-addressed path needs no signature).
      const dest = join(work, 'nix-dest');
      const back = await runNix(['copy', '--from', serve.url, '--to', dest, path], {
        env: conf('require-sigs = true'),
      });
      expect(back.code, back.stderr).toBe(0);
      const onDisk = await runNix(['hash', 'path', join(dest, path)], { env: conf('') });
      expect(onDisk.stdout.trim()).toBe(hash);
      expect(await verifyAll()).toMatchObject({ code: 0, report: { damaged: [] } });
    },
  );

  it('a root poisoned before uploads were checked: verify reports it, --repair removes it, fetch --hash restores it', async () => {
    const url = files.url('/multi.tar.gz');
    const { out: genuine } = await fetchTarball(url);
    const { out: other } = await fetchTarball(files.url('/pkg.tar.gz'));
    // What an upload without CA left at the fetched path, written under the serving process.
    const cache = await openCache({ root });
    try {
      const evil = (await cache.pathInfos.get(parseStorePath(other.path).digest))!;
      const { ca: _ca, ...noCa } = evil;
      const forged = { ...noCa, storePath: parseStorePath(genuine.path) };
      await cache.maintenance.put('pathInfos', [[forged.storePath.digest, encodePathInfo(forged)]]);
    } finally {
      await cache.close();
    }
    const found = await verifyAll();
    expect(found.code).toBe(1);
    expect(found.report.damaged).toEqual([
      {
        path: genuine.path,
        problems: [`fetched from ${url}, but its path info has no content address`],
      },
    ]);
    const repaired = await verifyAll('--repair');
    expect(repaired.report.damaged).toMatchObject([{ path: genuine.path, removed: true }]);
    const again = await fetchTarball(url, genuine.narHash);
    expect(again.out).toMatchObject({ path: genuine.path, narHash: genuine.narHash, cached: false });
    expect(toSRI((await servedNarInfo(genuine.path)).narHash)).toBe(genuine.narHash);
    expect(await verifyAll()).toMatchObject({ code: 0, report: { damaged: [] } });
  });
});
