/**
 * LevelDB databases for tests: opened the way the store opens them
 * (src/backends/level-db.ts `openLevelDb`), each at a fresh location inside one temp
 * directory per test file that is removed when the file's tests end.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { openLevelDb } from '../../src/backends/level-db.js';
import type { KV } from '../../src/storage/kv.js';

export async function openClassic(location: string): Promise<KV> {
  const db = await openLevelDb(location);
  if (db === undefined) throw new Error(`${location} is locked`);
  return db;
}

/** Registers a temp directory for this test file; returns a maker of fresh database locations in it. */
export function tempLocations(prefix: string): () => string {
  let root = '';
  let counter = 0;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  return () => join(root, `db-${counter++}`);
}
