/**
 * The `postgres://` backend: a store shared by processes on any number of
 * machines, its records in PostgreSQL and its chunk bytes in a byte store
 * (chunk-stores.ts: `--blob-store URL`). The key-value store of kv.ts on
 * PgLevel (storage/pg-level.ts: one transaction per batch, `= ANY` for bulk
 * reads), chunk bytes where the blob store URL says (the chunk index rows,
 * in PostgreSQL, name where), and the coordination of a shared database
 * (coordination/postgres.ts: session locks, rows that expire, LISTEN/NOTIFY).
 *
 * The schema is versioned in the database (storage/postgres.ts) and never
 * changed by opening a store: an older one is ERR_STORE_MIGRATE (run
 * `fetch-cache migrate`, once, from any machine), a newer one
 * ERR_STORE_VERSION. The store dir is recorded in `store_settings` by the
 * first opener and checked by every other (ERR_STORE_DIR), as a cache root's
 * `layout.json` records it. There is no local root: spool files and git
 * mirrors go to the OS temp dir.
 *
 * Each process opens two pools: one for the records (PgLevel, the rows of
 * the coordination) and one for connections that hold locks for a while
 * (the coordination's sessions) and for LISTEN, so a gc waiting for its
 * lock never takes a connection a query needs.
 */

import type { Sql } from 'postgres';
import type { StoreServices } from '../cache.js';
import { PostgresCoordination } from '../coordination/postgres.js';
import { FetchCacheError } from '../errors.js';
import { DEFAULT_STORE_DIR } from '../nix/store-path.js';
import type { KV } from '../storage/kv.js';
import { PgLevel } from '../storage/pg-level.js';
import {
  connectPostgres,
  migrate,
  openPostgres,
  postgresError,
  redactPostgresUrl,
} from '../storage/postgres.js';
import { openChunkStore } from './chunk-stores.js';
import { composeKv } from './kv.js';
import type { StoreOptions } from './registry.js';

/** Connections of the records pool, and of the sessions pool (locks, LISTEN). */
const POOL_SIZE = 10;
const SESSIONS_POOL_SIZE = 8;

export async function openPostgresStore(url: string, options: StoreOptions): Promise<StoreServices> {
  const name = redactPostgresUrl(url);
  if (options.blobStore === undefined) {
    throw new FetchCacheError(
      'ERR_BAD_URL',
      `the postgres:// store '${name}' keeps chunk bytes in a blob store: give --blob-store URL (or FETCH_CACHE_BLOB_STORE), e.g. file:///srv/fetch-cache/packs`,
      { path: name },
    );
  }
  const chunkStore = await openChunkStore(options.blobStore, {
    locationCache: options.locationCache,
    cacheRoot: options.cacheRoot,
    cacheBytes: options.cacheBytes,
    env: options.env,
  });
  const sql = await openPostgres(url, { max: POOL_SIZE });
  const opened: { end(): Promise<void> }[] = [{ end: () => sql.end({ timeout: 5 }) }];
  const endAll = async () => {
    for (const o of opened.reverse()) await o.end().catch(() => {});
  };
  try {
    const sessions = await connectPostgres(url, { max: SESSIONS_POOL_SIZE, idleTimeoutS: 60 });
    opened.push({ end: () => sessions.end({ timeout: 5 }) });
    const storeDir = await recordStoreDir(sql, options.storeDir, name);
    const db = new PgLevel(sql);
    await db.open();
    opened.push({ end: () => db.close() });
    const coordination = await PostgresCoordination.open({ sql, sessions });
    return composeKv(db as unknown as KV, {
      root: undefined,
      storeDir,
      chunkStore,
      coordination,
      database: name,
      close: endAll,
    });
  } catch (e) {
    await endAll();
    throw e;
  }
}

/** The store dir the store records: the first opener's (`asked`, else `/nix/store`); ERR_STORE_DIR for another. */
async function recordStoreDir(sql: Sql, asked: string | undefined, name: string): Promise<string> {
  let recorded: string | undefined;
  try {
    const read = async () =>
      (await sql<{ store_dir: string }[]>`select store_dir from store_settings`)[0]?.store_dir;
    recorded = await read();
    if (recorded === undefined) {
      await sql`insert into store_settings (store_dir) values (${asked ?? DEFAULT_STORE_DIR}) on conflict do nothing`;
      recorded = await read();
    }
  } catch (e) {
    throw postgresError(name, 'cannot read the store dir', e);
  }
  if (recorded === undefined) throw postgresError(name, 'cannot record the store dir', undefined);
  if (asked !== undefined && asked !== recorded) {
    throw new FetchCacheError(
      'ERR_STORE_DIR',
      `the store '${name}' holds paths of store dir '${recorded}', not '${asked}' (use another database or schema for another store dir)`,
      { path: name, expected: recorded, actual: asked },
    );
  }
  return recorded;
}

/** `fetch-cache migrate`: applies the migrations the database lacks (storage/postgres.ts). */
export async function migratePostgresStore(url: string): Promise<{ from: number; to: number }> {
  const sql = await connectPostgres(url, { max: 1 });
  try {
    return await migrate(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
