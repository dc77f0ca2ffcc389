/**
 * Trusting a private CA the way every Node program does: `NODE_EXTRA_CA_CERTS` names it, Node adds it to
 * its roots when it starts, and `fetch-cache` (bin/fetch-cache) then trusts it on its TLS connections
 * (node:https for URLs and tarballs, isomorphic-git's client for git). Real HTTPS servers on 127.0.0.1 with a
 * test CA from fixtures/tls; without the variable the same fetches fail as untrusted.
 */

import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBuilt, REPO_ROOT, runBin } from '../helpers/cli.js';
import { type GitHttpServer, startGitHttpServer } from '../helpers/git-http-server.js';
import { buildFixtureRepos, git } from '../helpers/git-repos.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

const TLS_DIR = join(REPO_ROOT, 'fixtures/tls');
const CA = join(TLS_DIR, 'ca.pem');
const identity = {
  key: readFileSync(join(TLS_DIR, 'server.key')),
  cert: readFileSync(join(TLS_DIR, 'server.pem')),
};
const BODY = Buffer.from('served over TLS by a server whose CA only NODE_EXTRA_CA_CERTS names\n');

/** `bin/fetch-cache args` with NODE_EXTRA_CA_CERTS set to `ca`, or unset. */
function run(args: readonly string[], ca: string | undefined) {
  return runBin(args, { env: { NODE_EXTRA_CA_CERTS: ca } });
}

let tmp: string;
let https: TestServer;
let gitHttps: GitHttpServer;

beforeAll(async () => {
  if (!cliBuilt()) throw new Error('dist/ is missing: run `npm run build` first');
  tmp = mkdtempSync(join(tmpdir(), 'fc-tls-'));
  https = await startServer({ '/file.txt': { body: BODY } }, { tls: identity });
  const repos = join(tmp, 'repos');
  mkdirSync(repos);
  buildFixtureRepos(repos);
  gitHttps = await startGitHttpServer(repos, { tls: identity });
});

afterAll(async () => {
  await https?.close();
  await gitHttps?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('NODE_EXTRA_CA_CERTS', () => {
  it('is trusted on HTTPS downloads', async () => {
    const expected = `sha256-${createHash('sha256').update(BODY).digest('base64')}`;
    const root = join(tmp, 'root-url');
    const ok = await run(['--root', root, '--json', 'fetch', 'url', https.url('/file.txt')], CA);
    expect(ok.stderr).not.toContain('Ignoring');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).hash).toBe(expected);
    // Without the CA the server is not trusted: the same fetch fails as an HTTP transfer error.
    const untrusted = await run(
      ['--root', join(tmp, 'root-untrusted'), 'fetch', 'url', https.url('/file.txt')],
      undefined,
    );
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/^ERR_HTTP: cannot fetch .*\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)\n$/);
  });

  it('is trusted on git fetches over HTTPS too', async () => {
    const url = `${gitHttps.baseUrl}/main.git`;
    const head = git(join(tmp, 'repos', 'main.git'), ['rev-parse', 'HEAD']);
    const ok = await run(['--root', join(tmp, 'root-git'), '--json', 'fetch', 'git', url], CA);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).rev).toBe(head);
    const untrusted = await run(['--root', join(tmp, 'root-git2'), 'fetch', 'git', url], undefined);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/^ERR_GIT: .*unable to verify the first certificate\n$/);
  });
});
