/**
 * `bin/fetch-cache`, the command as a shell finds it: it runs the built CLI with the arguments, exit code
 * and output untouched, also through a symbolic link (as `npm link` and node_modules/.bin make one), and a
 * repeated pinned fetch is answered by the CLI from the store it opens, with every check the CLI makes: a
 * deleted database is an empty cache, and an unreachable or missing URL is an error.
 */

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, cliBuilt, runBin, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

const BODY = Buffer.from('a pinned file, fetched once\n');
const SRI = `sha256-${createHash('sha256').update(BODY).digest('base64')}`;

let tmp: string;
let server: TestServer;

beforeAll(async () => {
  if (!cliBuilt()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  tmp = mkdtempSync(join(tmpdir(), 'fc-bin-'));
  server = await startServer({ '/file.txt': { body: BODY } });
});

afterAll(async () => {
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('bin/fetch-cache', () => {
  it('runs the CLI: the same output and exit codes as dist/cli/main.js, also through a symlink', async () => {
    const help = await runBin(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: fetch-cache /);
    expect(help).toEqual(await runCli(['--help']));
    const unknown = await runBin(['no-such-command']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("fetch-cache: unknown command 'no-such-command'");
    const link = join(tmp, 'fetch-cache');
    symlinkSync(CLI_BIN, link);
    const hashed = await runBin(['hash', 'file', '--type', 'sha256', CLI_BIN]);
    expect(hashed.code).toBe(0);
    expect(hashed.stdout).toMatch(/^sha256-/);
    const viaLink = spawnSync(link, ['hash', 'file', '--type', 'sha256', CLI_BIN], { encoding: 'utf8' });
    expect(viaLink.status).toBe(0);
    expect(viaLink.stdout).toBe(hashed.stdout);
  });

  it('a repeated pinned fetch is checked by the CLI: a deleted database, --offline and a 404 are errors', async () => {
    const root = join(tmp, 'root');
    const url = server.url('/file.txt');
    const args = ['--root', root, 'fetch', 'url', url, '--hash', SRI];
    const first = await runBin(args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^\/nix\/store\/[0-9a-z]{32}-file\.txt\n$/);
    // A hit: the same answer, no request.
    const requests = server.requests('/file.txt');
    expect(await runBin(args)).toEqual(first);
    expect(server.requests('/file.txt')).toBe(requests);

    // A database gone while the packs stay is damage, refused until `verify --repair` (docs/errors.md)...
    rmSync(join(root, 'db'), { recursive: true, force: true });
    const damaged = await runBin(['--offline', ...args]);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toMatch(/^ERR_DB_DAMAGED: /);
    // ...the whole store gone (database and packs): nothing is cached any more, so offline there is no answer...
    rmSync(join(root, 'packs'), { recursive: true, force: true });
    const offline = await runBin(['--offline', ...args]);
    expect(offline.code).toBe(1);
    expect(offline.stdout).toBe('');
    expect(offline.stderr).toMatch(/^ERR_OFFLINE: /);
    // ...and online, with the URL now answering 404, the fetch fails with the server's answer.
    server.route('/file.txt', { status: 404, body: 'gone' });
    const missing = await runBin(args);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/^ERR_HTTP: .*404/);
    // The fresh database the CLI has created meanwhile holds nothing either.
    expect((await runBin(['--offline', ...args])).code).toBe(1);
    expect((await runBin(args)).code).toBe(1);
  });
});
