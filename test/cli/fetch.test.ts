/**
 * `fetch url|tarball|nar` through the built CLI (dist/cli/main.js) against a real server on 127.0.0.1:
 * store paths as Nix recorded them (fixtures/nix-goldens/fetch-url.json, fixtures/nar-fetch/), the
 * `--json` fields of docs/cli.md, `cached` on a second run from another process, `--offline` failing with
 * ERR_OFFLINE and no connection, the one-line ERR_HASH_MISMATCH message, usage errors (exit 2), and no
 * progress output when stderr is not a TTY.
 */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashOf, toSRI } from '../../src/nix/hash.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

const goldens = JSON.parse(
  readFileSync(new URL('../../fixtures/nix-goldens/fetch-url.json', import.meta.url), 'utf8'),
) as {
  cases: Record<
    string,
    { path: string; body: { text?: string }; storePath: string; hash: string; narHash: string }
  >;
};
const narFixture = (f: string) => readFileSync(new URL(`../../fixtures/nar-fetch/${f}`, import.meta.url));
const narGolden = JSON.parse(narFixture('tree.json').toString('utf8')) as {
  sha256: { storePath: string; narHash: string };
};

const hello = goldens.cases.hello!;
let server: TestServer;
let work: string;
let root: string;

function cli(args: readonly string[]) {
  return runCli(['--root', root, ...args]);
}

beforeAll(async () => {
  if (!cliBuilt()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  work = await mkdtemp(join(tmpdir(), 'fc-cli-fetch-'));
  root = join(work, 'root');
  const tree = join(work, 'src/pkg-1.0');
  await mkdir(tree, { recursive: true });
  await writeFile(join(tree, 'README'), 'tarball contents\n');
  const tgz = execFileSync('tar', ['-czf', '-', '--mtime=@1700000000', '-C', join(work, 'src'), 'pkg-1.0']);
  server = await startServer({
    [hello.path]: { body: hello.body.text ?? '' },
    '/mismatch.txt': { body: 'mismatch\n' },
    '/tree.nar.xz': { body: narFixture('tree.nar.xz') },
    '/pkg.tar.gz': { body: tgz },
  });
});
afterAll(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('fetch-cache fetch', () => {
  it('fetch url prints the store path Nix computes, nothing on stderr', async () => {
    const r = await cli(['fetch', 'url', server.url(hello.path)]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(`${hello.storePath}\n`);
  });

  it('fetch url --json: path info + url, cached, hash; cached on a second run', async () => {
    const r = await cli(['fetch', 'url', server.url(hello.path), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({
      path: hello.storePath,
      narHash: hello.narHash,
      references: [],
      signatures: [],
      url: server.url(hello.path),
      cached: true,
      hash: toSRI(hashOf('sha256', hello.body.text ?? '')),
    });
    expect(j.ca).toBe(`fixed:sha256:${hello.hash}`);
    expect(typeof j.narSize).toBe('number');
  });

  it('--offline: a miss is ERR_OFFLINE and opens no connection; a hit still works', async () => {
    const before = server.connections();
    const miss = await cli(['--offline', 'fetch', 'url', server.url('/never.txt')]);
    expect(miss.code).toBe(1);
    expect(miss.stderr).toMatch(/^ERR_OFFLINE: \S.*\n$/);
    const hit = await cli(['fetch', 'url', server.url(hello.path), '--offline']);
    expect(hit).toMatchObject({ code: 0, stdout: `${hello.storePath}\n` });
    expect(server.connections()).toBe(before);
  });

  it('a hash mismatch is one ERR_HASH_MISMATCH line with both SRI hashes', async () => {
    const wrong = toSRI(hashOf('sha256', 'not it'));
    const r = await cli(['fetch', 'url', server.url('/mismatch.txt'), '--hash', wrong]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `ERR_HASH_MISMATCH: hash mismatch in file downloaded from '${server.url('/mismatch.txt')}': expected ${wrong} got ${toSRI(hashOf('sha256', 'mismatch\n'))}\n`,
    );
    const infos = await cli(['path-info', '--all']);
    expect(infos.stdout).not.toContain('mismatch.txt');
  });

  it('fetch nar --hash lands at the path `nix-store --add` gave the tree', async () => {
    const r = await cli([
      'fetch',
      'nar',
      server.url('/tree.nar.xz'),
      '--hash',
      narGolden.sha256.narHash,
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      path: narGolden.sha256.storePath,
      narHash: narGolden.sha256.narHash,
      cached: false,
    });
  });

  it('fetch nar without --hash is a usage error', async () => {
    const r = await cli(['fetch', 'nar', server.url('/tree.nar.xz')]);
    expect(r.code).toBe(2);
  });

  it('fetch tarball unpacks into a source path with lastModified', async () => {
    const r = await cli(['fetch', 'tarball', server.url('/pkg.tar.gz'), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.path).toMatch(/^\/nix\/store\/[0-9a-z]{32}-source$/);
    expect(j.ca).toMatch(/^fixed:r:sha256:/);
    expect(j.lastModified).toBe(1700000000);
    const again = await cli([
      'fetch',
      'tarball',
      server.url('/pkg.tar.gz'),
      '--hash',
      j.narHash,
      '--offline',
    ]);
    expect(again).toMatchObject({ code: 0, stdout: `${j.path}\n` });
  });

  it('an HTTP error is ERR_HTTP with the status and URL', async () => {
    const r = await cli(['fetch', 'url', server.url('/missing.txt')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`ERR_HTTP: HTTP error 404 (Not Found) fetching '${server.url('/missing.txt')}'\n`);
  });
});
