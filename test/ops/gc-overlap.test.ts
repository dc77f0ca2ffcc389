/**
 * gc beside another gc (issue 17 item 5), with real processes on one root:
 * a second gc waits for the first instead of running beside it, and
 * compaction (blob/packs.ts) keeps every live chunk even when another
 * process compacted the same packs while it looked — the interleavings
 * that lost every path and ended gc with an internal ENOENT error. The
 * interleavings are forced by running the other process from inside the
 * first one's index scan or row lookup.
 */

import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PackChunkStore } from '../../src/blob/packs.js';
import { openCache } from '../../src/cache.js';
import { verify } from '../../src/ops/verify.js';
import { chunkStoreOf } from '../helpers/chunk-damage.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { bytes, cleanTempDirs, tempDir } from '../helpers/ops-store.js';
import { startCli } from '../helpers/processes.js';

let http: TestServer;
beforeAll(async () => {
  http = await startServer();
  // About 3 s of body: a fetch that holds its ingest lease while the gcs start.
  http.route('/slow.bin', { body: bytes(5, 600_000), chunkSize: 20_000, slowMs: 100 });
});
afterAll(async () => {
  await http.close();
  cleanTempDirs();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** `fetch-cache add` of a small tree per seed, each in its own process: one small finished pack each. */
async function addTrees(root: string, seeds: number[]): Promise<void> {
  for (const seed of seeds) {
    const dir = join(tempDir(), `t${seed}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'a.bin'), bytes(seed, 300_000));
    writeFileSync(join(dir, 'b.txt'), `tree ${seed}\n`);
    const r = await runCli(['add', dir, '--root', root]);
    expect(r.code, r.stderr).toBe(0);
  }
}

const packCount = (root: string) =>
  readdirSync(join(root, 'packs')).filter((n) => n.endsWith('.pack')).length;

describe.skipIf(!cliBuilt())('gc beside another gc', () => {
  it('a second gc waits for the one running, then runs; both end well and nothing is lost', async () => {
    const root = tempDir();
    await addTrees(root, [1, 2]);
    const fetch = startCli(['fetch', 'url', http.url('/slow.bin'), '--root', root]);
    await sleep(500); // the fetch holds its ingest lease
    const first = startCli(['gc', '--root', root]);
    let firstErr = '';
    first.child.stderr?.on('data', (d: Buffer) => {
      firstErr += d.toString();
    });
    await until('the first gc to wait for the fetch', () => firstErr.includes('running fetch'));
    const second = startCli(['gc', '--root', root, '--max-size', '1G', '--keep-recent', '0']);
    let secondErr = '';
    second.child.stderr?.on('data', (d: Buffer) => {
      secondErr += d.toString();
    });
    await until('the second gc to wait', () => secondErr.length > 0);
    expect(secondErr).toContain(`waiting for gc by pid ${first.child.pid} to finish`);
    const order: string[] = [];
    const [f, a, b] = await Promise.all([
      fetch.exited,
      first.exited.then((r) => {
        order.push('first');
        return r;
      }),
      second.exited.then((r) => {
        order.push('second');
        return r;
      }),
    ]);
    expect(f.code, f.stderr).toBe(0);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(order).toEqual(['first', 'second']);
    const v = await runCli(['verify', '--all', '--root', root, '--json']);
    expect(JSON.parse(v.stdout)).toMatchObject({ checked: 3, damaged: [] });
  }, 60_000);

  it('compaction keeps the chunks another process moved into its own pack while the index was being read', async () => {
    const root = tempDir();
    await addTrees(root, [11, 12, 13]);
    expect(packCount(root)).toBe(3);
    const cache = await openCache({ root });
    try {
      const store = chunkStoreOf(cache) as PackChunkStore;
      const values = store.index.values.bind(store.index);
      let otherGc: Awaited<ReturnType<typeof runCli>> | undefined;
      // The first row is read (the scan's snapshot is taken); then another process compacts the three
      // packs into one of its own and exits, before this scan ends.
      store.index.values = (() => {
        store.index.values = values; // once (abstract-level may call it again inside)
        const it = values();
        return (async function* () {
          let first = true;
          for await (const v of it) {
            yield v;
            if (first) {
              first = false;
              otherGc = await runCli(['gc', '--root', root]);
            }
          }
        })();
      }) as unknown as typeof values;
      await store.compact();
      expect(otherGc?.code, otherGc?.stderr).toBe(0);
      expect((await verify(cache)).damaged).toEqual([]);
    } finally {
      await cache.close();
    }
    const v = await runCli(['verify', '--all', '--root', root, '--json']);
    expect(JSON.parse(v.stdout)).toMatchObject({ checked: 3, damaged: [] });
  }, 60_000);

  it('compaction skips packs another process rewrote or deleted meanwhile (no ENOENT), losing nothing', async () => {
    const root = tempDir();
    await addTrees(root, [21, 22, 23]);
    const cache = await openCache({ root });
    try {
      const store = chunkStoreOf(cache) as PackChunkStore;
      const getMany = store.index.getMany.bind(store.index);
      let otherGc: Awaited<ReturnType<typeof runCli>> | undefined;
      // While the first pack is being rewritten, another process compacts all three away.
      store.index.getMany = (async (keys: Uint8Array[]) => {
        store.index.getMany = getMany; // once
        otherGc = await runCli(['gc', '--root', root]);
        return getMany(keys);
      }) as typeof getMany;
      await store.compact();
      expect(otherGc?.code, otherGc?.stderr).toBe(0);
      expect((await verify(cache)).damaged).toEqual([]);
    } finally {
      await cache.close();
    }
    const v = await runCli(['verify', '--all', '--root', root, '--json']);
    expect(JSON.parse(v.stdout)).toMatchObject({ checked: 3, damaged: [] });
  }, 60_000);
});
