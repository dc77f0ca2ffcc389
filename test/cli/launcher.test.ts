/**
 * `bin/fetch-cache`, the launcher: it keeps Node from parsing NODE_EXTRA_CA_CERTS at start, and the CLI
 * still trusts those certificates on its TLS connections (undici for URLs and tarballs, isomorphic-git's
 * client for git), over real HTTPS servers on 127.0.0.1 with a test CA from fixtures/tls.
 */

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extraCaContext } from '../../src/fetchers/tls.js';
import { restoreExtraCaVar } from '../../src/fetchers/tls-env.js';
import { CLI_BIN, CLI_MAIN, type CliResult, cliBuilt, REPO_ROOT } from '../helpers/cli.js';
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

/** Runs `file args` with the environment minus NODE_EXTRA_CA_CERTS plus `env`. */
function run(file: string, args: readonly string[], env: Record<string, string>): Promise<CliResult> {
  const base = { ...process.env };
  delete base.NODE_EXTRA_CA_CERTS;
  delete base.FETCH_CACHE_EXTRA_CA_CERTS;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code: code ?? 1,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
  });
}

let tmp: string;
let https: TestServer;
let gitHttps: GitHttpServer;

beforeAll(async () => {
  if (!cliBuilt()) throw new Error('dist/cli-bundle/main.js is missing: run `npm run build` first');
  tmp = mkdtempSync(join(tmpdir(), 'fc-launcher-'));
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

describe('bin/fetch-cache', () => {
  it('starts Node without NODE_EXTRA_CA_CERTS: a missing file is not even read by a command that makes no connection', async () => {
    const env = { NODE_EXTRA_CA_CERTS: join(tmp, 'no-such-bundle.pem') };
    // Node itself reads the file at start and warns (the cost the launcher avoids)...
    const direct = await run(process.execPath, [CLI_MAIN, 'hash', 'path', TLS_DIR], env);
    expect(direct.code).toBe(0);
    expect(direct.stderr).toContain('Ignoring extra certs from');
    // ...started by the launcher, it never reads it; the answer is the same.
    const launched = await run(CLI_BIN, ['hash', 'path', TLS_DIR], env);
    expect(launched).toEqual({ code: 0, stdout: direct.stdout, stderr: '' });
  });

  it('trusts the NODE_EXTRA_CA_CERTS certificates on HTTPS downloads', async () => {
    const expected = `sha256-${createHash('sha256').update(BODY).digest('base64')}`;
    const root = join(tmp, 'root-url');
    const ok = await run(CLI_BIN, ['--root', root, '--json', 'fetch', 'url', https.url('/file.txt')], {
      NODE_EXTRA_CA_CERTS: CA,
    });
    expect(ok.stderr).not.toContain('Ignoring');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).hash).toBe(expected);
    // Without the CA the server is not trusted: the same fetch fails as an HTTP transfer error.
    const untrusted = await run(
      CLI_BIN,
      ['--root', join(tmp, 'root-untrusted'), 'fetch', 'url', https.url('/file.txt')],
      {},
    );
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/^ERR_HTTP: cannot fetch .*\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)\n$/);
  });

  it('trusts them on git fetches over HTTPS too', async () => {
    const url = `${gitHttps.baseUrl}/main.git`;
    const head = git(join(tmp, 'repos', 'main.git'), ['rev-parse', 'HEAD']);
    const ok = await run(CLI_BIN, ['--root', join(tmp, 'root-git'), '--json', 'fetch', 'git', url], {
      NODE_EXTRA_CA_CERTS: CA,
    });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).rev).toBe(head);
    const untrusted = await run(CLI_BIN, ['--root', join(tmp, 'root-git2'), 'fetch', 'git', url], {});
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/^ERR_GIT: .*unable to verify the first certificate\n$/);
  });

  it('warns like Node, once, and goes on with the bundled roots when the deferred file cannot be read', () => {
    const warnings: string[] = [];
    const env = { FETCH_CACHE_EXTRA_CA_CERTS: join(tmp, 'missing.pem') };
    expect(extraCaContext(env, (l) => warnings.push(l))).toBeUndefined();
    expect(extraCaContext(env, (l) => warnings.push(l))).toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^Ignoring extra certs from `.*missing\.pem`, load failed: /);
    expect(extraCaContext({})).toBeUndefined();
    expect(extraCaContext({ FETCH_CACHE_EXTRA_CA_CERTS: CA })).toBeDefined();
  });

  it('gives fetching commands, and only them, an 8 MiB young generation and --expose-gc, wherever the command word is', async () => {
    // A preload that reports the V8 flags the CLI process was started with.
    const probe = join(tmp, 'exec-argv.cjs');
    const out = join(tmp, 'exec-argv.json');
    writeFileSync(
      probe,
      `require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(process.execArgv));`,
    );
    const flagsOf = async (args: string[]) => {
      rmSync(out, { force: true });
      await run(CLI_BIN, args, { NODE_OPTIONS: `--require ${probe}` });
      return JSON.parse(readFileSync(out, 'utf8')) as string[];
    };
    const root = join(tmp, 'flags-root');
    const young = ['--max-semi-space-size=8', '--expose-gc'];
    expect(await flagsOf(['--root', root, '--offline', 'fetch', 'url', 'https://127.0.0.1:1/x'])).toEqual(
      young,
    );
    expect(await flagsOf(['--quiet', 'lock', '--manifest', join(tmp, 'none.toml')])).toEqual(young);
    expect(await flagsOf(['hash', 'path', TLS_DIR])).toEqual([]);
    // A value of --store-dir that reads like a command is not the command.
    expect(await flagsOf(['--store-dir', 'fetch', 'hash', 'path', TLS_DIR])).toEqual([]);
  });

  it('gives NODE_EXTRA_CA_CERTS back to the processes the CLI starts, never overriding one that is set', () => {
    const env: NodeJS.ProcessEnv = { FETCH_CACHE_EXTRA_CA_CERTS: CA };
    restoreExtraCaVar(env);
    expect(env.NODE_EXTRA_CA_CERTS).toBe(CA);
    const set: NodeJS.ProcessEnv = { FETCH_CACHE_EXTRA_CA_CERTS: CA, NODE_EXTRA_CA_CERTS: '/other.pem' };
    restoreExtraCaVar(set);
    expect(set.NODE_EXTRA_CA_CERTS).toBe('/other.pem');
    const none: NodeJS.ProcessEnv = {};
    restoreExtraCaVar(none);
    expect(none).toEqual({});
  });
});
