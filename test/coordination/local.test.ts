/**
 * LocalCoordination (coordination/local.ts), the coordination of a cache
 * root on one machine: the conformance suite over a database and stamp file
 * shared by two handles (as two processes on one root share them), and what
 * only records with pids can show: records of processes that are gone never
 * block a gc or an ingest, and are removed.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCoordination, OPS_SUBLEVEL } from '../../src/coordination/local.js';
import { binarySublevel, openMemoryKV } from '../../src/storage/kv.js';
import { coordinationConformance } from './conformance.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

coordinationConformance('LocalCoordination on one database, two handles', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-coord-'));
  dirs.push(dir);
  const db = await openMemoryKV();
  const coordination = new LocalCoordination(db, join(dir, 'pathinfo.gen'));
  const other = new LocalCoordination(db, join(dir, 'pathinfo.gen'));
  return {
    coordination,
    other,
    close: async () => {
      await coordination.close();
      await other.close();
      await db.close();
    },
  };
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
