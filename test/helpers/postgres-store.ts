/**
 * `postgres://` stores for tests, on the test PostgreSQL (helpers/postgres.ts):
 * each a schema of its own in the server's database with this code's
 * migrations applied (helpers/pg-level.ts), its chunk bytes in a directory of
 * its own (`file://` blob store). `remove()` drops both; close the stores
 * opened on it first.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import postgres from 'postgres';
import { migratedSchema, schemaName } from './pg-level.js';
import { TEST_POSTGRES } from './postgres.js';

export interface TestPostgresStore {
  /** The store URL (its connections use the store's schema). */
  readonly store: string;
  /** The blob store URL: a directory. */
  readonly blobStore: string;
  readonly blobDir: string;
  readonly schema: string;
  /** Another schema-less URL of the same database, for looking at it from the side. */
  readonly database: string;
  remove(): Promise<void>;
}

/** A migrated store, or (`migrated: false`) an empty schema that has no fetch-cache tables yet. */
export async function postgresStore(options: { migrated?: boolean } = {}): Promise<TestPostgresStore> {
  if (TEST_POSTGRES === undefined) {
    throw new Error('FETCH_CACHE_TEST_POSTGRES is unset: start scripts/services/pg-up.sh (CI must)');
  }
  const schema = schemaName();
  let store: string;
  if (options.migrated === false) {
    const u = new URL(TEST_POSTGRES);
    u.searchParams.set('search_path', schema);
    store = u.href;
    await admin((sql) => sql.unsafe(`create schema ${schema}`));
  } else {
    store = await migratedSchema(TEST_POSTGRES, schema);
  }
  const dir = mkdtempSync(join(tmpdir(), 'fc-pg-blobs-'));
  return {
    store,
    blobStore: pathToFileURL(dir).href,
    blobDir: dir,
    schema,
    database: TEST_POSTGRES,
    remove: async () => {
      await admin((sql) => sql.unsafe(`drop schema if exists ${schema} cascade`));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function admin(fn: (sql: postgres.Sql) => Promise<unknown>): Promise<void> {
  const sql = postgres(TEST_POSTGRES!, { max: 1, onnotice: () => {} });
  try {
    await fn(sql);
  } finally {
    await sql.end();
  }
}
