/**
 * The package as a user gets it: `npm pack` of this checkout (the built dist/), installed with
 * `npm install <tarball>` into an empty project (its dependencies from the local npm cache first, the
 * registry for what it lacks; the native addon not built: FETCH_CACHE_NO_NATIVE_BUILD=1), then
 * fixtures/package-consumer/main.ts and the examples of docs/library.md compiled by this repository's tsc
 * under `strict` (the package's declarations checked too: `skipLibCheck` off), and main.ts run: it pins a file served on 127.0.0.1, locks it,
 * serves the cache with `createServer`, reads the pin's narinfo back, and runs gc, verify and stats. What
 * it prints must be what Nix 2.8 computed for that file (fixtures/nix-goldens/lock.json).
 */

import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBuilt, REPO_ROOT, runCommand } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { HELLO } from '../lock/world.js';

const golden = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'fixtures/nix-goldens/lock.json'), 'utf8')) as {
    cases: Record<string, { hash?: string; storePath: string }>;
  }
).cases.hello!;

const npm = (args: string[], cwd: string, env: Record<string, string> = {}) =>
  runCommand('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, env });

let tmp: string;
let project: string;
let files: TestServer;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'fc-fresh-project-'));
  project = join(tmp, 'project');
  mkdirSync(project);
  files = await startServer({ '/hello.txt': { body: HELLO } });
});
afterAll(async () => {
  await files?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe.runIf(cliBuilt())('npm pack, installed in a fresh project', () => {
  it('installs, type-checks under strict, and runs openCache, resolvePin, synchronize, createServer, gc, verify and stats', async () => {
    // dist/ is built already (npm test builds it first): pack it as it is.
    const packed = await npm(['pack', '--ignore-scripts', '--pack-destination', tmp], REPO_ROOT);
    expect(packed.code, packed.stderr).toBe(0);
    const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    expect(tarball).toMatch(/^fetch-cache-\d+\.\d+\.\d+\.tgz$/);

    writeFileSync(
      join(project, 'package.json'),
      `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`,
    );
    const installed = await npm(['install', '--prefer-offline', join(tmp, tarball!)], project, {
      FETCH_CACHE_NO_NATIVE_BUILD: '1',
    });
    expect(installed.code, installed.stderr).toBe(0);
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules/fetch-cache/package.json'), 'utf8'));
    expect(manifest.name).toBe('fetch-cache');

    copyFileSync(join(REPO_ROOT, 'fixtures/package-consumer/main.ts'), join(project, 'main.ts'));
    // The examples of docs/library.md are compiled too (not run: they name example.org and /var/cache).
    const examples = [
      ...readFileSync(join(REPO_ROOT, 'docs/library.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g),
    ];
    expect(examples.length).toBeGreaterThanOrEqual(2);
    const exampleFiles = examples.map((m, i) => {
      writeFileSync(join(project, `library-example-${i}.ts`), m[1]!);
      return `library-example-${i}.ts`;
    });
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          skipLibCheck: false,
          target: 'ES2022',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          // Node's types from this repository: the project installs nothing but the package.
          typeRoots: [join(REPO_ROOT, 'node_modules/@types')],
          types: ['node'],
          outDir: 'out',
        },
        files: ['main.ts', ...exampleFiles],
      }),
    );
    const tsc = await runCommand(
      process.execPath,
      [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', '.'],
      {
        cwd: project,
      },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.code).toBe(0);

    const r = await runCommand(
      process.execPath,
      ['out/main.js', join(tmp, 'root'), files.url('/hello.txt')],
      {
        cwd: project,
      },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const seen = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(seen).toEqual({
      storePath: golden.storePath,
      hash: golden.hash,
      locked: golden.storePath,
      added: ['hello'],
      narinfoStorePath: golden.storePath,
      priority: '12',
      url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      gcPaths: 1,
      checked: 1,
      damaged: 0,
      paths: 1,
    });
  });
});
