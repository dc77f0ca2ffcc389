/**
 * LocalCoordination (coordination/local.ts), the coordination of a cache
 * root on one machine (its conformance suite runs on `level:` stores, with
 * a second process's handle: test/backends/conformance.test.ts). Here what
 * only records with pids can show: records of processes that are gone never
 * block a gc or an ingest, and are removed; and uses are written behind the
 * caller, never on its way.
 */

import { rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { openMemoryKV } from '../../src/backends/memory.js';
import { LocalCoordination, OPS_SUBLEVEL } from '../../src/coordination/local.js';
import { binarySublevel } from '../../src/storage/kv.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('LocalCoordination records', () => {
  it('are not blocked by records of processes that are gone, and remove them', async () => {
    const db = await openMemoryKV();
    const c = new LocalCoordination(db);
    const ops = binarySublevel(db, OPS_SUBLEVEL);
    const dead = { id: 'x', kind: 'ingest', pid: 2 ** 22 + 12345, host: hostname(), startedAt: 0 };
    await ops.put(Buffer.from('lease/x'), Buffer.from(JSON.stringify(dead)));
    await ops.put(
      Buffer.from('lease/u'),
      Buffer.from(JSON.stringify({ ...dead, id: 'u', kind: 'use', path: 'ab' })),
    );
    await ops.put(Buffer.from('gc/y'), Buffer.from(JSON.stringify({ ...dead, id: 'y', kind: 'gc' })));
    await ops.put(Buffer.from('gcrun/z'), Buffer.from(JSON.stringify({ ...dead, id: 'z', kind: 'gc' })));
    // A gc's turn and exclusive phase, and an ingest, all start at once.
    const turn = await c.gcTurn({ timeoutMs: 2_000 });
    const end = await c.exclusive({ timeoutMs: 2_000 });
    await end();
    await turn();
    expect(await c.ingest(async () => 'ran', { timeoutMs: 2_000 })).toBe('ran');
    expect(await c.held()).toEqual(new Set());
    expect(await ops.keys().all()).toEqual([]);
    await db.close();
  });

  it('writes a noted use behind the caller, one batch for the uses noted meanwhile', async () => {
    const db = await openMemoryKV();
    const c = new LocalCoordination(db);
    const writes: number[] = [];
    db.on('write', (ops: unknown[]) => writes.push(ops.length));
    c.recordUse(new Uint8Array(20).fill(1), 1_000);
    c.recordUse(new Uint8Array(20).fill(2), 2_000);
    c.recordUse(new Uint8Array(20).fill(1), 3_000);
    expect(writes).toEqual([]);
    await c.flushUses();
    expect(writes).toEqual([2]);
    expect((await c.lastUses()).get('01'.repeat(20))).toBe(3_000);
    await db.close();
  });

  it('a record of a live process on another host counts (its pid cannot be checked here)', async () => {
    const db = await openMemoryKV();
    const c = new LocalCoordination(db);
    const ops = binarySublevel(db, OPS_SUBLEVEL);
    const remote = {
      id: 'x',
      kind: 'use',
      pid: 2 ** 22 + 12345,
      host: `${hostname()}-other`,
      startedAt: 0,
      path: 'ab',
    };
    await ops.put(Buffer.from('lease/x'), Buffer.from(JSON.stringify(remote)));
    expect(await c.held()).toEqual(new Set(['ab']));
    await db.close();
  });
});
