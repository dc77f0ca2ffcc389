/**
 * `postgres://` stores for tests, on the test PostgreSQL (helpers/postgres.ts):
 * each a schema of its own in the server's database with this code's
 * migrations applied (helpers/pg-level.ts), its chunk bytes in a directory of
 * its own (`file://` blob store) or, given an S3 server (`s3`), in a prefix of
 * its own of one bucket per test process (`s3://` blob store). `remove()`
 * drops the schema and the bytes; close the stores opened on it first.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import postgres from 'postgres';
import type { S3TestServer } from '../storage/s3-suite.js';
import { migratedSchema, schemaName } from './pg-level.js';
import { TEST_POSTGRES } from './postgres.js';
import { s3Client, s3Env, s3Url } from './s3-stores.js';

export interface TestPostgresStore {
  /** The store URL (its connections use the store's schema). */
  readonly store: string;
  /** The blob store URL: a directory, or a prefix of a bucket. */
  readonly blobStore: string;
  /** The directory of a `file://` blob store. */
  readonly blobDir: string | undefined;
  /** What a process using the store needs in its environment (the S3 credentials), beside its own. */
  readonly env: Readonly<Record<string, string>>;
  readonly schema: string;
  /** Another schema-less URL of the same database, for looking at it from the side. */
  readonly database: string;
  remove(): Promise<void>;
}

export interface PostgresStoreOptions {
  /** False: an empty schema that has no fetch-cache tables yet. */
  readonly migrated?: boolean | undefined;
  /** Chunk bytes in pack objects on this S3 server (default: a directory). */
  readonly s3?: S3TestServer | undefined;
}

/** A migrated store, or (`migrated: false`) an empty schema that has no fetch-cache tables yet. */
export async function postgresStore(options: PostgresStoreOptions = {}): Promise<TestPostgresStore> {
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
  const bytes = options.s3 === undefined ? fileBytes() : await s3Bytes(options.s3);
  return {
    store,
    ...bytes,
    schema,
    database: TEST_POSTGRES,
    remove: async () => {
      await admin((sql) => sql.unsafe(`drop schema if exists ${schema} cascade`));
      await bytes.remove();
    },
  };
}

interface Bytes {
  readonly blobStore: string;
  readonly blobDir: string | undefined;
  readonly env: Readonly<Record<string, string>>;
  remove(): Promise<void>;
}

function fileBytes(): Bytes {
  const dir = mkdtempSync(join(tmpdir(), 'fc-pg-blobs-'));
  return {
    blobStore: pathToFileURL(dir).href,
    blobDir: dir,
    env: {},
    remove: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The bucket of this process's stores on each server, created on first use. */
const buckets = new Map<string, Promise<string>>();

async function s3Bytes(server: S3TestServer): Promise<Bytes> {
  let bucket = buckets.get(server.endpoint);
  if (bucket === undefined) {
    bucket = (async () => {
      const name = `fc-pg-${process.pid}-${randomBytes(4).toString('hex')}`;
      const c = s3Client(server);
      try {
        await c.createBucket(name);
      } finally {
        await c.close();
      }
      return name;
    })();
    buckets.set(server.endpoint, bucket);
  }
  const name = await bucket;
  const prefix = `s-${randomBytes(6).toString('hex')}/`;
  return {
    blobStore: s3Url(server, name, prefix),
    blobDir: undefined,
    env: s3Env(server),
    remove: async () => {
      const c = s3Client(server);
      try {
        const keys: string[] = [];
        for await (const o of c.listObjects(name, prefix)) keys.push(o.key);
        await c.deleteObjects(name, keys);
      } finally {
        await c.close();
      }
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
