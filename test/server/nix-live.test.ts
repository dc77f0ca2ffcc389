/**
 * The cache against the real Nix (2.8 here and in CI): substitution with
 * `nix copy --from`, uploads with `nix copy --to` and a netrc token,
 * signatures on an input-addressed path, a fixed-output `nix-build` that
 * substitutes instead of building, `nix path-info --store`, and `curl -C -`.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathInfoJson } from '../../src/cli/format.js';
import { fetchSpec } from '../../src/fetchers/base.js';
import { addPath } from '../../src/fs/add.js';
import { toSRI } from '../../src/nix/hash.js';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { formatPublicKey, formatSecretKey, generateKeyPair } from '../../src/nix/signing.js';
import { formatStorePath, parseStorePath } from '../../src/nix/store-path.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import { git } from '../helpers/git-repos.js';
import { startServer as startFileServer, type TestServer } from '../helpers/http-server.js';
import { importInputAddressed, nixAvailable, type RunResult, runNix } from '../helpers/nix.js';
import { type Harness, startHarness, TOKEN } from './harness.js';

const live = nixAvailable();

let h: Harness;
let files: TestServer;
let ourKey: string;
const otherKey = generateKeyPair('someone-else-1');
const fetched: Record<'tarball' | 'git' | 'file', PathInfo> = {} as never;

beforeAll(async () => {
  h = await startHarness();
  ourKey = formatPublicKey(h.key.public);
  const tarball = await readFile(new URL('../../fixtures/archives/pkg.tar.gz', import.meta.url));
  files = await startFileServer({ '/pkg.tar.gz': { body: tarball } });
  fetched.tarball = (await fetchSpec(h.cache, { type: 'tarball', url: files.url('/pkg.tar.gz') })).pathInfo;
  const repo = join(h.tmp, 'repo');
  await mkdir(join(repo, 'src'), { recursive: true });
  await writeFile(join(repo, 'README'), 'a git tree\n');
  await writeFile(join(repo, 'src', 'main.c'), 'int main(void) { return 0; }\n');
  git(h.tmp, ['init', '-q', repo]);
  git(repo, ['add', '.']);
  git(repo, ['-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', 'one']);
  fetched.git = (await fetchSpec(h.cache, { type: 'git', url: repo })).pathInfo;
  await writeFile(join(h.tmp, 'notes.txt'), 'an added file\n');
  fetched.file = await addPath(h.cache, join(h.tmp, 'notes.txt'), { flat: true });
});
afterAll(async () => {
  await files?.close();
  await h?.close();
});

function conf(extra: string): Record<string, string> {
  return { NIX_CONFIG: `experimental-features = nix-command\nrequire-sigs = true\n${extra}` };
}

function expectOk(r: RunResult, what: string): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(0);
}

async function narHashOnDisk(storeRoot: string, path: string): Promise<string> {
  const r = await runNix(['hash', 'path', join(storeRoot, path)], { env: conf('') });
  expectOk(r, 'nix hash path');
  return r.stdout.trim();
}

/** curl as a child process (async: the server runs in this process). */
function curl(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('curl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** Sandbox paths that exist here, so the chroot store can run /bin/sh. */
function sandboxPaths(): string {
  return ['/bin', '/usr', '/lib', '/lib64', '/lib32', '/libx32'].filter((p) => existsSync(p)).join(' ');
}

/** An input-addressed path in a fresh chroot store: built by nix-build, or imported when builds cannot run. */
async function inputAddressedPath(storeRoot: string, tag: string): Promise<string> {
  const expr = join(h.tmp, `${tag}.nix`);
  await writeFile(
    expr,
    `derivation { name = "${tag}"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "export PATH=/bin:/usr/bin; mkdir $out; echo ${tag} > $out/greeting; ln -s greeting $out/link; printf '#!/bin/sh\\necho hi\\n' > $out/run; chmod +x $out/run"]; }`,
  );
  const built = await runNix(
    ['--store', storeRoot, '--option', 'sandbox-paths', sandboxPaths(), expr, '--no-out-link'],
    {
      bin: 'nix-build' as never,
      env: conf('substituters ='),
    },
  );
  if (built.code === 0) return built.stdout.trim().split('\n').at(-1)!;
  const local = join(h.tmp, `${tag}-tree`);
  await mkdir(local, { recursive: true });
  await writeFile(join(local, 'greeting'), `${tag}\n`);
  const path = `/nix/store/${encodeNix32(sha256(tag).slice(0, 20))}-${tag}`;
  await importInputAddressed(storeRoot, path, local);
  return path;
}

describe.skipIf(!live)('real Nix substitutes from the cache', () => {
  it.each(['tarball', 'git', 'file'] as const)(
    'nix copy --from brings the %s path with our key trusted',
    async (kind) => {
      const info = fetched[kind];
      const path = formatStorePath(info.storePath);
      const dest = join(h.tmp, `dest-${kind}`);
      const r = await runNix(['copy', '--from', h.base, '--to', dest, path], {
        env: conf(`substituters =\ntrusted-public-keys = ${ourKey}`),
      });
      expectOk(r, 'nix copy --from');
      expect(await narHashOnDisk(dest, path)).toBe(toSRI({ algo: 'sha256', digest: info.narSha256 }));
    },
  );

  it('nix-build of a fixed-output derivation substitutes the fetched tarball instead of building', async () => {
    const info = fetched.tarball;
    const expr = join(h.tmp, 'fod.nix');
    await writeFile(
      expr,
      `derivation { name = "source"; system = builtins.currentSystem; builder = "/bin/sh"; args = ["-c" "exit 1"]; outputHashMode = "recursive"; outputHashAlgo = "sha256"; outputHash = "${toSRI({ algo: 'sha256', digest: info.narSha256 })}"; }`,
    );
    const store = join(h.tmp, 'fod-store');
    const r = await runNix(['--store', store, expr, '--no-out-link'], {
      bin: 'nix-build' as never,
      env: conf(`substituters = ${h.base}\ntrusted-public-keys = ${ourKey}`),
    });
    expectOk(r, 'nix-build');
    expect(r.stdout.trim()).toBe(formatStorePath(info.storePath));
    expect(r.stderr).toContain(`copying path '${formatStorePath(info.storePath)}' from '${h.base}'`);
  });

  it('nix path-info --store agrees with our path info', async () => {
    for (const info of Object.values(fetched)) {
      const path = formatStorePath(info.storePath);
      const r = await runNix(['path-info', '--json', '--store', h.base, path], {
        env: conf('substituters ='),
      });
      expectOk(r, 'nix path-info');
      const [theirs] = JSON.parse(r.stdout) as Record<string, unknown>[];
      const ours = pathInfoJson(info, '/nix/store');
      expect(theirs).toMatchObject({
        path: ours.path,
        narHash: ours.narHash,
        narSize: ours.narSize,
        references: ours.references,
        ca: ours.ca,
      });
      expect(theirs!.url).toBe(`nar/${encodeNix32(info.narSha256)}.nar`);
      expect(theirs!.signatures).toEqual([expect.stringMatching(/^fetch-cache-test-1:/)]);
    }
  });

  it('a download resumed with curl -C - is the whole NAR', async () => {
    const info = fetched.tarball;
    const url = `${h.base}/nar/${encodeNix32(info.narSha256)}.nar`;
    const out = join(h.tmp, 'resumed.nar');
    expect((await curl(['-sS', '-f', '-r', '0-1000', '-o', out, url])).code).toBe(0);
    expect((await readFile(out)).length).toBe(1001);
    const resumed = await curl(['-sS', '-f', '-C', '-', '-o', out, url]);
    expect(resumed.code, resumed.stderr).toBe(0);
    const bytes = await readFile(out);
    expect(bytes.length).toBe(info.narSize);
    expect(Buffer.from(sha256(bytes)).equals(Buffer.from(info.narSha256))).toBe(true);
  });
});

describe.skipIf(!live)('real Nix uploads to the cache', () => {
  let built: string;
  let storeA: string;
  let nixKeyFile: string;
  let netrc: string;

  beforeAll(async () => {
    storeA = join(h.tmp, 'store-a');
    built = await inputAddressedPath(storeA, 'built-by-nix');
    const nixKey = generateKeyPair('nix-uploader-1');
    nixKeyFile = join(h.tmp, 'nix-uploader.sec');
    await writeFile(nixKeyFile, formatSecretKey(nixKey.secret));
    netrc = join(h.tmp, 'netrc');
    await writeFile(netrc, `machine 127.0.0.1 login nix password ${TOKEN}\n`);
  });

  it('refuses nix copy --to without the token and stores nothing', async () => {
    const r = await runNix(['copy', '--from', storeA, '--to', h.base, built], {
      env: conf('substituters ='),
    });
    expect(r.code).not.toBe(0);
    expect(await h.cache.pathInfos.get(parseStorePath(built).digest)).toBeUndefined();
  });

  it('nix copy --to with a netrc token uploads, keeping the uploader signature', async () => {
    const r = await runNix(['copy', '--from', storeA, '--to', `${h.base}?secret-key=${nixKeyFile}`, built], {
      env: conf(`substituters =\nnetrc-file = ${netrc}`),
    });
    expectOk(r, 'nix copy --to');
    const info = await h.cache.pathInfos.get(parseStorePath(built).digest);
    expect(info?.signatures).toEqual([expect.stringMatching(/^nix-uploader-1:/)]);
    expect(info?.ca).toBeUndefined();
    expect(toSRI({ algo: 'sha256', digest: info!.narSha256 })).toBe(await narHashOnDisk(storeA, built));
  });

  it('nix copy --from brings it back byte-identical with our key trusted', async () => {
    const dest = join(h.tmp, 'store-c');
    const r = await runNix(['copy', '--from', h.base, '--to', dest, built], {
      env: conf(`substituters =\ntrusted-public-keys = ${ourKey}`),
    });
    expectOk(r, 'nix copy --from');
    expect(await narHashOnDisk(dest, built)).toBe(await narHashOnDisk(storeA, built));
    const a = await readFile(join(storeA, built, 'greeting'));
    expect((await readFile(join(dest, built, 'greeting'))).equals(a)).toBe(true);
  });

  it('fails with only another key trusted (the path is input-addressed)', async () => {
    const dest = join(h.tmp, 'store-d');
    const r = await runNix(['copy', '--from', h.base, '--to', dest, built], {
      env: conf(`substituters =\ntrusted-public-keys = ${formatPublicKey(otherKey.public)}`),
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/lacks a valid signature|not signed by any of the keys/);
  });
});
