/**
 * Stateless `serve` on a `postgres://` store: two `fetch-cache serve`
 * processes on one `--store` and one blob store, standing for two machines
 * behind a load balancer, and CLI runs as a third process. A narinfo one
 * server has cached is dropped once another process changes the path
 * (NOTIFY); real Nix's `nix copy --to`, through a balancer that sends every
 * `PUT nar/…` to one server and everything else to the other, lands once
 * (the pending upload is a row both servers see), and `nix copy --from` the
 * server that never saw the narinfo brings the path back. On the real
 * PostgreSQL (FETCH_CACHE_TEST_POSTGRES); skipped without it (CI fails in
 * test/backends/postgres.test.ts then), the Nix part without Nix.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBalancer } from '../helpers/balancer.js';
import { runCli } from '../helpers/cli.js';
import { nixAvailable, runNix } from '../helpers/nix.js';
import { TEST_POSTGRES } from '../helpers/postgres.js';
import { postgresStore, type TestPostgresStore } from '../helpers/postgres-store.js';
import { type Running, startServing } from '../helpers/processes.js';

const TOKEN = 'postgres-serve-token-0123456789';

async function status(url: string): Promise<number> {
  return (await fetch(url)).status;
}

/** Waits (at most 20 s) until `done()`. */
async function until(done: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(await done()).toBe(true);
}

describe.skipIf(TEST_POSTGRES === undefined)('two servers on one postgres:// store', () => {
  let s: TestPostgresStore;
  let tmp: string;
  let a: Running & { url: string };
  let b: Running & { url: string };
  let args: string[];

  beforeAll(async () => {
    s = await postgresStore();
    tmp = mkdtempSync(join(tmpdir(), 'fc-pg-serve-'));
    const tokenFile = join(tmp, 'token');
    writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
    args = ['--store', s.store, '--blob-store', s.blobStore];
    [a, b] = await Promise.all([
      startServing([...args, '--upload-token-file', tokenFile]),
      startServing([...args, '--upload-token-file', tokenFile]),
    ]);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await s?.remove();
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('a narinfo cached by a server is dropped once another process evicts the path', async () => {
    writeFileSync(join(tmp, 'served.txt'), 'served by both\n');
    const added = await runCli([...args, 'add', join(tmp, 'served.txt')]);
    expect(added.stderr).toBe('');
    const hashPart = added.stdout.trim().slice('/nix/store/'.length, '/nix/store/'.length + 32);
    for (const server of [a, b]) {
      expect(await status(`${server.url}/${hashPart}.narinfo`)).toBe(200);
      expect(await status(`${server.url}/${hashPart}.narinfo`)).toBe(200); // answered from its memory now
    }
    const gc = await runCli([...args, 'gc', '--max-size', '0']);
    expect(gc.stderr).toBe('');
    for (const server of [a, b])
      await until(async () => (await status(`${server.url}/${hashPart}.narinfo`)) === 404);
  });

  it.skipIf(!nixAvailable())(
    'nix copy --to with PUT nar and PUT narinfo on different servers lands once; nix copy --from the other brings it back',
    async () => {
      const balancer = await startBalancer(a.url, b.url);
      try {
        const source = join(tmp, 'source');
        mkdirSync(join(source, 'sub'), { recursive: true });
        writeFileSync(join(source, 'greeting'), 'hello from nix\n');
        writeFileSync(join(source, 'sub', 'data.bin'), Buffer.alloc(300_000, 7));
        const storeA = join(tmp, 'nix-a');
        const netrc = join(tmp, 'netrc');
        writeFileSync(netrc, `machine 127.0.0.1 login nix password ${TOKEN}\n`);
        const env = {
          NIX_CONFIG: `experimental-features = nix-command\nsubstituters =\nrequire-sigs = false\nnetrc-file = ${netrc}`,
        };
        const added = await runNix(
          ['store', 'add-path', '--store', storeA, '--name', 'split-upload', source],
          {
            env,
          },
        );
        expect(added.code, added.stderr).toBe(0);
        const path = added.stdout.trim();

        const copied = await runNix(['copy', '--from', storeA, '--to', balancer.url, path], { env });
        expect(copied.code, copied.stderr).toBe(0);
        expect(balancer.seen).toContain('PUT nar -> A');
        expect(balancer.seen).toContain('PUT narinfo -> B');

        const info = await runCli([...args, '--json', 'path-info', path]);
        expect(info.stderr).toBe('');
        expect(info.stdout).toContain(path);

        // From the server that received the NAR but never the narinfo.
        const storeC = join(tmp, 'nix-c');
        const back = await runNix(['copy', '--from', a.url, '--to', storeC, path], { env });
        expect(back.code, back.stderr).toBe(0);
        const hashA = await runNix(['hash', 'path', join(storeA, path)], { env });
        const hashC = await runNix(['hash', 'path', join(storeC, path)], { env });
        expect(hashC.stdout).toBe(hashA.stdout);
        expect(hashC.code).toBe(0);
        const verify = await runCli([...args, 'verify', path]);
        expect(verify.stdout).toMatch(/, 0 damaged\n$/);
      } finally {
        await balancer.close();
      }
    },
  );
});
