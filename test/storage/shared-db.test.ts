/**
 * One LevelDB, many openers (storage/shared-db.ts): the first opener hosts
 * the database over a unix socket and later ones are guests. Every service
 * conformance suite runs on a guest through the registry
 * (test/backends/conformance.test.ts, "as a second process sees it"), so
 * everything a service does (sublevels, batches, iterators,
 * getMany/hasMany) works remotely. Here: what guests see, and
 * failover: when the host closes, a guest becomes host in its place — in
 * the middle of an iteration, with writes in flight — and a third opener
 * finds it. In one process here (LevelDB's lock is per process, so a
 * second open in-process is refused just like one from another process).
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openLevelDb } from '../../src/backends/level-db.js';
import { binarySublevel } from '../../src/storage/kv.js';
import { openSharedDb, type SharedDb, socketPathFor } from '../../src/storage/shared-db.js';

const roots: string[] = [];
function tempRoot(): string {
  const d = mkdtempSync(join(tmpdir(), 'fc-shared-'));
  roots.push(d);
  return d;
}
afterEach(() => {
  for (const d of roots.splice(0)) rmSync(d, { recursive: true, force: true });
});

const open = (root: string) => {
  const location = join(root, 'db');
  return openSharedDb(root, {
    location,
    open: () => openLevelDb(location),
    owner: () => 'test',
    timeoutMs: 5_000,
  });
};
const b = (s: string) => new Uint8Array(Buffer.from(s));
const s = (u: Uint8Array | undefined) => (u === undefined ? undefined : Buffer.from(u).toString());

/** A host and a guest on a fresh root; the service under test sits on the guest. */
async function pair(): Promise<{ host: SharedDb; guest: SharedDb; close(): Promise<void> }> {
  const root = tempRoot();
  const host = await open(root);
  const guest = await open(root);
  return {
    host,
    guest,
    close: async () => {
      await guest.close();
      await host.close();
    },
  };
}

describe('a shared root', () => {
  it('the first opener hosts, the next is a guest; each sees the other’s writes', async () => {
    const { host, guest, close } = await pair();
    expect(host.hosting()).toBe(true);
    expect(guest.hosting()).toBe(false);
    const h = binarySublevel(host.db, 'x');
    const g = binarySublevel(guest.db, 'x');
    await g.put(b('a'), b('1'));
    await h.batch([
      { type: 'put', key: b('b'), value: b('2') },
      { type: 'put', key: b('c'), value: b('3') },
    ]);
    expect(s(await h.get(b('a')))).toBe('1');
    expect((await g.getMany([b('a'), b('b'), b('z')])).map(s)).toEqual(['1', '2', undefined]);
    expect(await g.hasMany([b('c'), b('z')])).toEqual([true, false]);
    expect((await g.keys({ gt: b('a'), reverse: true }).all()).map(s)).toEqual(['c', 'b']);
    await g.clear({ gte: b('b') });
    expect((await h.keys().all()).map(s)).toEqual(['a']);
    await close();
  });

  it('fails over when the host closes: iterations resume past their last key, writes in flight land', async () => {
    const root = tempRoot();
    const host = await open(root);
    const guest = await open(root);
    const hostX = binarySublevel(host.db, 'x');
    await hostX.batch(
      Array.from({ length: 2000 }, (_, i) => ({
        type: 'put' as const,
        key: b(`k${String(i).padStart(5, '0')}`),
        value: b(String(i)),
      })),
    );
    const g = binarySublevel(guest.db, 'x');
    const seen: string[] = [];
    let writes: Promise<void>[] = [];
    for await (const [key] of g.iterator({ gte: b('k00100'), limit: 1500 })) {
      seen.push(s(key)!);
      if (seen.length === 700) {
        writes = Array.from({ length: 50 }, (_, i) => g.put(b(`w${i}`), b('v')));
        await host.close();
      }
    }
    await Promise.all(writes);
    expect(seen.length).toBe(1500);
    expect(seen[0]).toBe('k00100');
    expect(seen[1499]).toBe('k01599');
    expect(new Set(seen).size).toBe(1500);
    expect(guest.hosting()).toBe(true);
    // A newcomer reaches the new host.
    const third = await open(root);
    expect(third.hosting()).toBe(false);
    expect(
      await binarySublevel(third.db, 'x')
        .keys({ gte: b('w'), lt: b('x') })
        .all(),
    ).toHaveLength(50);
    await guest.close();
    // ... and takes over in turn.
    expect(s(await binarySublevel(third.db, 'x').get(b('k00005')))).toBe('5');
    expect(third.hosting()).toBe(true);
    await third.close();
  });

  it('ignores a socket file left by a host that died', async () => {
    const root = tempRoot();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(socketPathFor(root), 'stale');
    const host = await open(root);
    const guest = await open(root);
    await binarySublevel(guest.db, 'x').put(b('k'), b('v'));
    expect(s(await binarySublevel(host.db, 'x').get(b('k')))).toBe('v');
    await guest.close();
    await host.close();
  });

  it('puts the socket in the temp dir when the root path is too long for a unix socket', () => {
    const long = `/tmp/${'x'.repeat(120)}`;
    expect(socketPathFor(long)).toMatch(/^.*fetch-cache-[0-9a-f]{32}\.sock$/);
    expect(socketPathFor('/tmp/short')).toBe('/tmp/short/db.sock');
  });
});
