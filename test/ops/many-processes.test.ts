/**
 * Many processes, one root (docs/architecture.md; docs/operating.md "Many processes, one root"): several `fetch-cache fetch url`
 * processes at once, next to a long-running process that holds the root
 * (a library user, then `fetch-cache serve`). None may fail with a lock
 * error, nothing may be lost: every fetch exits 0, `path-info --all` lists
 * every path, `verify --all` is clean, and serve answers the narinfo of
 * paths that other processes wrote while it ran.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { bytes, cleanTempDirs, tempDir } from '../helpers/ops-store.js';
import { startHolder, startServe } from '../helpers/processes.js';

const FILES = 8;
let http: TestServer;

beforeAll(async () => {
  http = await startServer();
  for (let i = 0; i < FILES; i++) {
    http.route(`/f${i}.bin`, { body: bytes(100 + i, 200_000 + i * 10_000), chunkSize: 32 * 1024, slowMs: 2 });
  }
});
afterAll(async () => {
  await http.close();
  cleanTempDirs();
});

async function fetchAllInParallel(root: string): Promise<string[]> {
  const runs = await Promise.all(
    Array.from({ length: FILES }, (_, i) =>
      runCli(['fetch', 'url', http.url(`/f${i}.bin`), '--root', root, '--json']),
    ),
  );
  for (const r of runs) {
    expect(r.stderr).not.toMatch(/LOCK|ERR_STORE_LOCKED|ERR_IO/);
    expect(r.code, r.stderr).toBe(0);
  }
  return runs.map((r) => (JSON.parse(r.stdout) as { path: string }).path);
}

async function expectIntact(root: string, paths: string[]): Promise<void> {
  const listed = await runCli(['path-info', '--all', '--root', root]);
  expect(listed.code, listed.stderr).toBe(0);
  expect(listed.stdout.trim().split('\n').sort()).toEqual([...paths].sort());
  const v = await runCli(['verify', '--all', '--root', root, '--json']);
  expect(v.code, v.stderr).toBe(0);
  expect(JSON.parse(v.stdout)).toMatchObject({ checked: paths.length, damaged: [] });
}

describe.skipIf(!cliBuilt())('many processes on one root', () => {
  it('parallel CLI fetches while another process holds the root open', async () => {
    const root = tempDir();
    const holder = await startHolder(root);
    try {
      const paths = await fetchAllInParallel(root);
      expect(new Set(paths).size).toBe(FILES);
      await expectIntact(root, paths);
    } finally {
      await holder.stop();
    }
    expect((await holder.exited).code).toBe(0);
  }, 120_000);

  it('parallel CLI fetches with serve on the same root; serve sees what they wrote', async () => {
    const root = tempDir();
    const serve = await startServe(root);
    try {
      const paths = await fetchAllInParallel(root);
      for (const p of paths) {
        const hash = p.replace(/^\/nix\/store\//, '').slice(0, 32);
        const res = await fetch(`${serve.url}/${hash}.narinfo`);
        expect(res.status).toBe(200);
        expect(await res.text()).toContain(`StorePath: ${p}`);
      }
      // gc and stats run as guests of serve too.
      const gc = await runCli(['gc', '--root', root, '--json']);
      expect(gc.code, gc.stderr).toBe(0);
      const stats = await runCli(['stats', '--root', root, '--json']);
      expect(JSON.parse(stats.stdout)).toMatchObject({ paths: FILES });
      await expectIntact(root, paths);
    } finally {
      await serve.stop();
    }
  }, 120_000);

  it('parallel CLI fetches with nobody else: the first one hosts, the rest hand over as it exits', async () => {
    const root = tempDir();
    const paths = await fetchAllInParallel(root);
    await expectIntact(root, paths);
  }, 120_000);
});
