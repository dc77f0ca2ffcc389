/**
 * `fetch … --to-nix-store` against real Nix 2.8 with a private chroot store (`store = DIR` in the
 * NIX_CONFIG the CLI's child `nix-store` inherits): afterwards `nix-store --verify-path` and
 * `nix path-info --json` accept exactly the printed path, with the narHash and content address we
 * printed, for a tarball tree (executable, symlink), a flat file and an executable file; a second run
 * finds the path valid and fetches nothing. Without Nix on PATH the command says so (ERR_NIX_STORE);
 * a cache whose store dir is not Nix's is refused with both paths named. The library option
 * (`FetcherOptions.toNixStore`) does the same.
 */

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { parseAnyPrefixedHash, toSRI } from '../../src/nix/hash.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { NIX_CONFIG, nixAvailable, runNix } from '../helpers/nix.js';

let tmp: string;
let server: TestServer;
let nixStore: string;
let nixEnv: Record<string, string>;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'fc-to-nix-'));
  const src = join(tmp, 'src', 'tool-1.0');
  mkdirSync(join(src, 'bin'), { recursive: true });
  writeFileSync(join(src, 'README'), 'tool 1.0\n');
  writeFileSync(join(src, 'bin', 'tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  execFileSync('ln', ['-s', 'README', join(src, 'link')]);
  const tgz = execFileSync('tar', ['-czf', '-', '--mtime=@1700000000', '-C', join(tmp, 'src'), 'tool-1.0']);
  server = await startServer({
    '/tool.tar.gz': { body: tgz },
    '/notes.txt': { body: 'notes for the nix store\n' },
    '/script.sh': { body: '#!/bin/sh\necho script\n' },
    '/lib.txt': { body: 'library\n' },
  });
  nixStore = join(tmp, 'nix');
  // The CLI runs nix-store with its own environment: a private HOME and the chroot store.
  nixEnv = {
    HOME: join(tmp, 'home'),
    XDG_CACHE_HOME: join(tmp, 'home', '.cache'),
    NIX_CONFIG: `${NIX_CONFIG}\nstore = ${nixStore}`,
  };
});
afterAll(async () => {
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const cli = (args: readonly string[], env: Record<string, string | undefined> = nixEnv) =>
  runCli(['--root', join(tmp, 'cache'), ...args], { env });

describe.runIf(cliBuilt() && nixAvailable())('fetch --to-nix-store with real Nix', () => {
  const cases: [string, string[]][] = [
    ['a tarball tree', ['fetch', 'tarball', '/tool.tar.gz']],
    ['a flat file', ['fetch', 'url', '/notes.txt']],
    ['an executable file', ['fetch', 'url', '/script.sh', '--executable']],
  ];
  for (const [what, [cmd, type, path, ...rest]] of cases) {
    it(`${what}: valid in the Nix store under the printed path, with our narHash and ca`, async () => {
      const r = await cli([cmd!, type!, server.url(path!), ...rest, '--to-nix-store', '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const ours = JSON.parse(r.stdout) as { path: string; narHash: string; ca: string; nixStore: string };
      expect(ours.nixStore).toBe('added');
      const check = await runNix(['--store', nixStore, '--verify-path', ours.path], { bin: 'nix-store' });
      expect(check).toMatchObject({ code: 0, stderr: '' });
      const info = await runNix(['path-info', '--store', nixStore, '--json', ours.path]);
      expect(info.code).toBe(0);
      const [theirs] = JSON.parse(info.stdout) as { path: string; narHash: string; ca: string }[];
      expect(theirs!.path).toBe(ours.path);
      expect(toSRI(parseAnyPrefixedHash(theirs!.narHash))).toBe(ours.narHash);
      expect(theirs!.ca).toBe(ours.ca);

      const requests = server.requests();
      const again = await cli([cmd!, type!, server.url(path!), ...rest, '--to-nix-store', '--json']);
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ path: ours.path, nixStore: 'valid', cached: true });
      expect(server.requests()).toBe(requests);
    });
  }

  it('plain output is still just the store path', async () => {
    const r = await cli(['fetch', 'url', server.url('/lib.txt'), '--to-nix-store']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\/nix\/store\/[0-9a-z]{32}-lib\.txt\n$/);
    const check = await runNix(['--store', nixStore, '--check-validity', r.stdout.trim()], {
      bin: 'nix-store',
    });
    expect(check.code).toBe(0);
  });

  it('a cache of another store dir is refused with both paths named', async () => {
    const r = await runCli(
      [
        '--root',
        join(tmp, 'gnu'),
        '--store-dir',
        '/gnu/store',
        'fetch',
        'url',
        server.url('/notes.txt'),
        '--to-nix-store',
      ],
      { env: nixEnv },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^ERR_NIX_STORE: Nix added the content of \/gnu\/store\/\S+-notes\.txt as \/nix\/store\/\S+-notes\.txt: its store dir is not \/gnu\/store\n$/,
    );
  });

  it('the library option FetcherOptions.toNixStore does the same', async () => {
    const cache = await openCache({ root: join(tmp, 'lib-cache') });
    try {
      const store = join(tmp, 'nix-lib');
      const r = await new Fetcher(cache, { toNixStore: { store } }).fetch({
        type: 'tarball',
        url: server.url('/tool.tar.gz'),
      });
      const check = await runNix(['--store', store, '--verify-path', r.path], { bin: 'nix-store' });
      expect(check.code).toBe(0);
    } finally {
      await cache.close();
    }
  });
});

describe.runIf(cliBuilt())('fetch --to-nix-store without Nix', () => {
  it('says that Nix is not installed, in one coded line', async () => {
    const empty = join(tmp, 'empty-path');
    mkdirSync(empty, { recursive: true });
    const r = await cli(['fetch', 'url', server.url('/notes.txt'), '--to-nix-store'], {
      ...nixEnv,
      PATH: empty,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      "ERR_NIX_STORE: Nix is not installed: 'nix-store' is not on PATH (it is needed to add paths to the Nix store)\n",
    );
  });
});
