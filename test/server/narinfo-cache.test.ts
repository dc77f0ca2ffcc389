/**
 * The narinfo response cache (narinfo-source.ts): a repeated GET is served
 * without reading the path info, and any path-info write (gc eviction, a
 * replaced path info, an upload) in any process on the root is seen by the
 * next request, through the generation stamp (coordination/change-stamp.ts).
 */

import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalChangeStamp } from '../../src/coordination/change-stamp.js';
import { storePathHashPart } from '../../src/nix/store-path.js';
import { gc } from '../../src/ops/gc.js';
import { countCalls } from '../helpers/count-calls.js';
import { cleanTempDirs, tempDir } from '../helpers/ops-store.js';
import { addSampleTree, type Harness, rawRequest, startHarness } from './harness.js';

const execFileAsync = promisify(execFile);

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(() => h.close());

describe('narinfo response cache', () => {
  it('serves a repeated narinfo without reading the path info, with identical bytes and headers', async () => {
    const info = await addSampleTree(h);
    const url = `/${storePathHashPart(info.storePath)}.narinfo`;
    const gets = countCalls(h.cache.pathInfos, 'get');
    const first = await rawRequest(h.port, 'GET', url);
    expect(first.status).toBe(200);
    expect(gets.count).toBe(1);
    const again = await rawRequest(h.port, 'GET', url);
    const head = await rawRequest(h.port, 'HEAD', url);
    expect(gets.count).toBe(1);
    expect(again.body.equals(first.body)).toBe(true);
    for (const r of [again, head]) {
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('text/x-nix-narinfo');
      expect(r.headers['content-length']).toBe(String(first.body.length));
      expect(r.headers['cache-control']).toBe('public, max-age=300');
    }
    expect(head.body.length).toBe(0);
  });

  it('never serves a narinfo of a path that gc evicted', async () => {
    const info = await addSampleTree(h, 'evicted', 1000);
    const url = `/${storePathHashPart(info.storePath)}.narinfo`;
    expect((await rawRequest(h.port, 'GET', url)).status).toBe(200);
    expect((await rawRequest(h.port, 'GET', url)).status).toBe(200);
    const report = await gc(h.cache, { maxSize: 1 });
    expect(report.evicted).toEqual([`${storePathHashPart(info.storePath)}-evicted`]);
    expect((await rawRequest(h.port, 'GET', url)).status).toBe(404);
    expect((await rawRequest(h.port, 'HEAD', url)).status).toBe(404);
  });

  it('serves a replaced path info at once (another writer, no upload through this server)', async () => {
    const info = await addSampleTree(h);
    const url = `/${storePathHashPart(info.storePath)}.narinfo`;
    const before = (await rawRequest(h.port, 'GET', url)).body.toString();
    expect(before).not.toContain('other-key-1:');
    const sig = `other-key-1:${Buffer.alloc(64, 7).toString('base64')}`;
    await h.cache.pathInfos.put({ ...info, signatures: [...info.signatures, sig] });
    const after = (await rawRequest(h.port, 'GET', url)).body.toString();
    expect(after).toContain(`Sig: ${sig}`);
  });
});

describe('LocalChangeStamp', () => {
  const watching: LocalChangeStamp[] = [];
  afterEach(() => {
    for (const g of watching.splice(0)) g.unwatch();
    cleanTempDirs();
  });
  /** A stamp file's path in a fresh temp dir (removed after the test). */
  const stampFile = () => join(tempDir('fc-gen-'), 'pathinfo.gen');
  /** A reader of `file` that watches it (the watch is closed after the test). */
  const watcher = (file: string) => {
    const g = new LocalChangeStamp(file);
    watching.push(g);
    return g;
  };

  it('changes with every bump, across instances sharing the file (processes on one root)', () => {
    const file = stampFile();
    const writer = new LocalChangeStamp(file);
    const reader = new LocalChangeStamp(file);
    const seen = new Set<string>([reader.current()]);
    for (let i = 0; i < 50; i++) {
      writer.bump();
      const stamp = reader.current();
      expect(seen.has(stamp)).toBe(false);
      seen.add(stamp);
    }
    expect(reader.current()).toBe(reader.current());
  });

  it('watching, sees each write of another process once that process has exited', async () => {
    const file = stampFile();
    const reader = watcher(file);
    expect(reader.watch()).toBe(true);
    const seen = new Set<string>([reader.current()]);
    for (let i = 0; i < 20; i++) {
      // What bump() does, in another process; awaited as a client awaits its `gc` or `add`.
      await execFileAsync(process.execPath, [
        '-e',
        `require('fs').appendFileSync(${JSON.stringify(file)}, '.')`,
      ]);
      const stamp = reader.current();
      expect(seen.has(stamp)).toBe(false);
      seen.add(stamp);
    }
    // Unchanged: the same stamp (from memory; bench/serve.mjs shows the stat saved).
    const kept = reader.current();
    expect(reader.current()).toBe(kept);
    reader.bump(); // in-process: at once
    expect(reader.current()).not.toBe(kept);
  });

  it('watching, falls back to a stat per call once the file is replaced', async () => {
    const file = stampFile();
    const reader = watcher(file);
    reader.watch();
    const before = reader.current();
    await rm(file);
    await writeFile(file, 'replaced');
    await new Promise((r) => setTimeout(r, 50)); // the 'rename' event
    const after = reader.current();
    expect(after).not.toBe(before);
    await writeFile(file, 'replaced again, longer');
    expect(reader.current()).not.toBe(after); // no event needed: it stats again
  });

  it('counts in memory without a file', () => {
    const g = new LocalChangeStamp();
    const a = g.current();
    g.bump();
    expect(g.current()).not.toBe(a);
  });
});
