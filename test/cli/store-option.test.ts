/**
 * `--store URL` and `FETCH_CACHE_STORE` (backends/registry.ts) on the built
 * CLI: `level://DIR` is the root `--root DIR` names, `memory:` a store that
 * lives as long as the command, a flag beats the environment, and a URL no
 * backend opens is bad usage (exit 2) before anything is opened.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { levelUrl } from '../../src/backends/registry.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

let tmp: string;
let server: TestServer;
const noStoreEnv = { FETCH_CACHE_STORE: undefined, FETCH_CACHE_ROOT: undefined };

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'fc-store-option-'));
  server = await startServer({ '/f.txt': { body: 'fetched through memory:\n' } });
});
afterAll(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function paths(args: string[], env: Record<string, string | undefined> = {}): Promise<number> {
  const r = await runCli([...args, 'stats', '--json'], { env: { ...noStoreEnv, ...env } });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { paths: number }).paths;
}

describe.skipIf(!cliBuilt())('--store', () => {
  it('level://DIR is the root --root DIR names; the flag beats FETCH_CACHE_STORE', async () => {
    const root = join(tmp, 'root a');
    const src = join(tmp, 'src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'x'), 'x');
    const add = await runCli(['--store', levelUrl(root), 'add', src], { env: noStoreEnv });
    expect(add.code, add.stderr).toBe(0);
    expect(await paths(['--root', root])).toBe(1);
    expect(await paths([], { FETCH_CACHE_STORE: levelUrl(root) })).toBe(1);
    expect(await paths([], { FETCH_CACHE_ROOT: root })).toBe(1);
    expect(await paths(['--root', join(tmp, 'other')], { FETCH_CACHE_STORE: levelUrl(root) })).toBe(0);
    expect(await paths(['--store', 'memory:'], { FETCH_CACHE_ROOT: root })).toBe(0);
  });

  it('memory: fetches into a store that lives as long as the command', async () => {
    const r = await runCli(['--store', 'memory:', '--json', 'fetch', 'url', server.url('/f.txt')], {
      env: noStoreEnv,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).path).toMatch(/^\/nix\/store\/[0-9a-z]{32}-f\.txt$/);
    expect(await paths(['--store', 'memory:'])).toBe(0);
  });

  it('a URL no backend opens, or --store with --root, is bad usage', async () => {
    const bad = await runCli(['--store', 'redis://localhost', 'stats'], { env: noStoreEnv });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--store: bad store URL 'redis:\/\/localhost': no backend for 'redis:'/);
    const env = await runCli(['stats'], { env: { FETCH_CACHE_STORE: 'level://host/x' } });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/FETCH_CACHE_STORE: bad store URL/);
    const both = await runCli(['--store', 'memory:', '--root', tmp, 'stats'], { env: noStoreEnv });
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/give --store or --root, not both/);
  });
});
