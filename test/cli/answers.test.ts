/**
 * The launcher's answers (src/answers.ts): a pinned fetch the CLI has answered once is answered again by
 * `bin/fetch-cache` without starting Node, byte for byte what the CLI prints for the cache hit; anything
 * not pinned, or whose path info was since deleted, goes to the CLI. "Without Node" is shown by running
 * the launcher with NODE_OPTIONS naming a module that does not exist: Node then fails at start.
 */

import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerName, readAnswerUses, retireAnswers } from '../../src/answers.js';
import { PathInfoGeneration } from '../../src/pathinfo/generation.js';
import { LevelPathInfoService } from '../../src/pathinfo/leveldb.js';
import { openMemoryKV } from '../../src/storage/kv.js';
import { cliBuilt, REPO_ROOT, runCli, runLauncher } from '../helpers/cli.js';
import { buildFixtureRepos, git } from '../helpers/git-repos.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { fakeSignature, PATH_INFO_FILE } from '../pathinfo/conformance.js';

/** Node cannot start with this: whatever still succeeds was answered by the launcher alone. */
const NO_NODE = { NODE_OPTIONS: `--require=${join(tmpdir(), 'fc-no-such-module', 'x.cjs')}` };
const BODY = Buffer.from('a file fetched once, then answered by the launcher\n');
const SRI = `sha256-${createHash('sha256').update(BODY).digest('base64')}`;
// A query with `%` and `/` in it, which the answer's file name escapes.
const FILE_PATH = '/dir/file.txt?q=%2F50%25&r=a/b';

let tmp: string;
let server: TestServer;
let repoUrl: string;
let rev: string;

beforeAll(async () => {
  if (!cliBuilt()) throw new Error('dist/cli-bundle/main.js is missing: run `npm run build` first');
  tmp = mkdtempSync(join(tmpdir(), 'fc-answers-'));
  server = await startServer({ [FILE_PATH]: { body: BODY } });
  const repos = buildFixtureRepos(join(tmp, 'repos'));
  repoUrl = `file://${repos.main}`;
  rev = git(repos.main, ['rev-parse', 'main']);
});

afterAll(async () => {
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

let rootCount = 0;
function newRoot(): string {
  return join(tmp, `root-${rootCount++}`);
}

/** The answer files (not the epoch or the use stamps) under `root`. */
function answerFiles(root: string): string[] {
  const dir = join(root, 'answers');
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  for (const d of readdirSync(dir)) {
    if (d === 'epoch' || d === 'used') continue;
    for (const f of readdirSync(join(dir, d))) out.push(join(d, f));
  }
  return out;
}

describe('answers from bin/fetch-cache', () => {
  it('NO_NODE really keeps Node from starting', async () => {
    const r = await runLauncher(['--version'], { env: NO_NODE });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Cannot find module');
  });

  it.each([
    ['plain', [] as string[]],
    ['--json', ['--json']],
  ])(
    'fetch git --rev (%s): the second run is answered without Node, exactly as the CLI answers a hit',
    async (_, flags) => {
      const root = newRoot();
      const args = ['--root', root, ...flags, 'fetch', 'git', repoUrl, '--ref', 'main', '--rev', rev];
      const first = await runLauncher(args);
      expect(first.code).toBe(0);
      expect(answerFiles(root)).toHaveLength(1);
      const hit = await runCli(args); // the CLI itself, no launcher: a fetch index hit
      expect(hit.code).toBe(0);
      const answered = await runLauncher(args, { env: NO_NODE });
      expect(answered).toEqual({ code: 0, stdout: hit.stdout, stderr: '' });
      if (flags.includes('--json')) {
        const j = JSON.parse(answered.stdout) as Record<string, unknown>;
        expect(j).toMatchObject({ rev, cached: true, url: repoUrl });
        expect(first.stdout).toBe(hit.stdout.replace('"cached":true', '"cached":false'));
      } else {
        expect(answered.stdout).toBe(first.stdout);
        expect(answered.stdout).toMatch(/^\/nix\/store\/[0-9a-z]{32}-source\n$/);
      }
    },
  );

  it('fetch url --hash: answered with no request; --root, FETCH_CACHE_ROOT and XDG_CACHE_HOME find the same answers', async () => {
    const root = newRoot();
    const url = server.url(FILE_PATH);
    const args = ['--json', 'fetch', 'url', url, '--hash', SRI, '--name', 'file.txt'];
    const first = await runLauncher(args, { env: { FETCH_CACHE_ROOT: root } });
    expect(first.code, first.stderr).toBe(0);
    const requests = server.requests(FILE_PATH);
    const answered = await runLauncher(args, { env: { ...NO_NODE, FETCH_CACHE_ROOT: root } });
    expect(answered.code, answered.stderr).toBe(0);
    const hit = await runCli(args, { env: { FETCH_CACHE_ROOT: root } });
    expect(answered.stdout).toBe(hit.stdout);
    expect(JSON.parse(answered.stdout)).toMatchObject({ hash: SRI, cached: true, url });
    expect(server.requests(FILE_PATH)).toBe(requests);
    // The same line with --root instead of the variable names the same answer (the root is not in the name).
    const viaFlag = await runLauncher(['--root', root, ...args], { env: NO_NODE });
    expect(viaFlag.stdout).toBe(hit.stdout);
    // XDG_CACHE_HOME/fetch-cache, as the CLI finds the default root.
    const xdg = join(tmp, 'xdg');
    const viaXdg = await runLauncher(args, { env: { XDG_CACHE_HOME: xdg, FETCH_CACHE_ROOT: '' } });
    expect(viaXdg.code, viaXdg.stderr).toBe(0);
    expect(readdirSync(join(xdg, 'fetch-cache', 'answers'))).toContain('epoch');
    const again = await runLauncher(args, { env: { ...NO_NODE, XDG_CACHE_HOME: xdg, FETCH_CACHE_ROOT: '' } });
    expect(again.code, again.stderr).toBe(0);
  });

  it('what is not pinned, or depends on the working directory, is never answered', async () => {
    const root = newRoot();
    const cases = [
      ['fetch', 'git', repoUrl, '--ref', 'main'],
      ['fetch', 'url', server.url(FILE_PATH)],
      ['fetch', 'git', 'repos/main.git', '--rev', rev],
    ];
    for (const c of cases) {
      const args = ['--root', root, ...c];
      const first = await runLauncher(args, { cwd: tmp });
      expect(first.code, first.stderr).toBe(0);
      const second = await runLauncher(args, { env: NO_NODE, cwd: tmp });
      expect(second.code, c.join(' ')).not.toBe(0);
    }
    expect(answerFiles(root)).toEqual([]);
  });

  it('a failed fetch leaves no answer', async () => {
    const root = newRoot();
    const wrong = `sha256-${Buffer.alloc(32).toString('base64')}`;
    const args = ['--root', root, 'fetch', 'url', server.url(FILE_PATH), '--hash', wrong];
    expect((await runLauncher(args)).code).toBe(1);
    const again = await runLauncher(args, { env: NO_NODE });
    expect(again.code).not.toBe(0);
  });

  it('gc deleting the path retires the answer and its use stamp: the next run goes to the CLI, which fetches again', async () => {
    const root = newRoot();
    const args = ['--root', root, 'fetch', 'url', server.url(FILE_PATH), '--hash', SRI];
    const first = await runLauncher(args);
    expect(first.code).toBe(0);
    expect((await runLauncher(args, { env: NO_NODE })).stdout).toBe(first.stdout);
    expect(readdirSync(join(root, 'answers', 'used'))).toHaveLength(1);
    const gc = await runLauncher(['--root', root, '--json', 'gc', '--max-size', '0']);
    expect(gc.code, gc.stderr).toBe(0);
    expect(JSON.parse(gc.stdout).deleted.pathInfos).toBe(1);
    expect(answerFiles(root)).toEqual([]);
    expect(readdirSync(join(root, 'answers', 'used'))).toEqual([]); // its use stamp went with it
    expect((await runLauncher(args, { env: NO_NODE })).code).not.toBe(0);
    const requests = server.requests(FILE_PATH);
    const again = await runLauncher(args);
    expect(again).toEqual({ code: 0, stdout: first.stdout, stderr: '' });
    expect(server.requests(FILE_PATH)).toBe(requests + 1);
  });

  it('an answer from another build, or from a retired epoch, is not given', async () => {
    const root = newRoot();
    const args = ['--root', root, 'fetch', 'git', repoUrl, '--rev', rev];
    expect((await runLauncher(args)).code).toBe(0);
    const [file] = answerFiles(root);
    const dir = join(root, 'answers');
    const epoch = readFileSync(join(dir, 'epoch'), 'utf8').trim();
    const build = readFileSync(join(REPO_ROOT, 'dist/cli-bundle/build-id'), 'utf8').trim();
    expect(file).toBe(join(`${epoch}-${build}`, answerName(args)!));
    // Moved under another build id: the launcher does not use it.
    const other = join(dir, `${epoch}-0000000000000000`);
    mkdirSync(other);
    writeFileSync(join(other, answerName(args)!), readFileSync(join(dir, file!)));
    rmSync(join(dir, `${epoch}-${build}`), { recursive: true });
    expect((await runLauncher(args, { env: NO_NODE })).code).not.toBe(0);
    // Written again by the CLI, then retired: not used either, and the old directories are gone.
    expect((await runLauncher(args)).code).toBe(0);
    expect((await runLauncher(args, { env: NO_NODE })).code).toBe(0);
    retireAnswers(root);
    expect((await runLauncher(args, { env: NO_NODE })).code).not.toBe(0);
    expect(answerFiles(root)).toEqual([]);
  });

  it('an answer records a use of its path for gc --max-size', async () => {
    const root = newRoot();
    const args = ['--root', root, 'fetch', 'git', repoUrl, '--rev', rev];
    expect((await runLauncher(args)).code).toBe(0);
    expect(readdirSync(join(root, 'answers', 'used'))).toEqual([]); // the CLI recorded this use itself
    expect((await runLauncher(args, { env: NO_NODE })).code).toBe(0);
    const [digest] = readdirSync(join(root, 'answers', 'used'));
    expect(digest).toMatch(/^[0-9a-f]{40}$/);
    const stamp = join(root, 'answers', 'used', digest!);
    utimesSync(stamp, new Date(1_000_000), new Date(1_000_000));
    expect(readAnswerUses(root).get(digest!)).toBe(1_000_000);
    const before = Date.now();
    expect((await runLauncher(args, { env: NO_NODE })).code).toBe(0);
    expect(statSync(stamp).mtimeMs).toBeGreaterThanOrEqual(before - 1000);
    expect(readAnswerUses(root).get(digest!)).toBe(statSync(stamp).mtimeMs);
  });
});

describe('answerName', () => {
  it('drops --root, escapes % and /, joins with %+', () => {
    expect(answerName(['--root', '/r', 'fetch', 'url', 'http://h/a%2Fb', '--root=/x', '--json'])).toBe(
      'fetch%+url%+http:%2F%2Fh%2Fa%252Fb%+--json',
    );
    expect(answerName(['', 'fetch'])).toBe('%+fetch');
  });

  it('has no name for `--`, a newline or more than 250 bytes', () => {
    expect(answerName(['fetch', '--', 'url'])).toBeUndefined();
    expect(answerName(['fetch', 'a\nb'])).toBeUndefined();
    expect(answerName(['fetch', 'é'.repeat(121)])).toBe(`fetch%+${'é'.repeat(121)}`);
    expect(answerName(['fetch', 'é'.repeat(122)])).toBeUndefined();
  });
});

describe('retiring answers from the path info service', () => {
  it('runs after a delete or a changed put, not after a new or identical put', async () => {
    let retired = 0;
    const service = new LevelPathInfoService(await openMemoryKV(), new PathInfoGeneration(), () => retired++);
    const info = PATH_INFO_FILE;
    await service.put(info);
    await service.put(info);
    expect(retired).toBe(0);
    await service.put({ ...info, signatures: [...info.signatures, fakeSignature('k-1', 9)] });
    expect(retired).toBe(1);
    await service.delete(info.storePath.digest);
    expect(retired).toBe(2);
    await service.delete(info.storePath.digest);
    expect(retired).toBe(2);
  });
});
